#include "tape_foreign.hpp"

namespace tapegrad {

void ForeignTensors::enter(PyObject* tensor, uint32_t row) {
    foreign_[tensor] = row;
    held_.push_back(Py_NewRef(tensor));
}

void ForeignTensors::retire(PyObject* tensor, uint32_t identity_row) {
    auto [it, first] = retired_.try_emplace(tensor);
    if (first) held_.push_back(Py_NewRef(tensor));
    it->second.push_back(identity_row);
    foreign_.erase(tensor);
}

void ForeignTensors::remap(const RowMap& map, const std::function<uint32_t(uint32_t)>& identity_row,
                           std::vector<PyObject*>& released) {
    std::vector<PyObject*> held;
    std::unordered_map<uint32_t, StaleRow> stale;
    for (const auto& [row, info] : stale_)
        if (map.kept(row)) stale[map[row]] = info;
    std::unordered_map<PyObject*, uint32_t> foreign;
    for (const auto& [tensor, row] : foreign_) {
        const uint32_t kept_row = map.kept(row) ? row : identity_row(row);
        if (!map.kept(kept_row)) continue;
        foreign[tensor] = map[kept_row];
        held.push_back(Py_NewRef(tensor));
    }
    std::unordered_map<PyObject*, std::vector<uint32_t>> retired;
    for (const auto& [tensor, rows] : retired_)
        for (uint32_t row : rows) {
            if (!map.kept(row)) continue;
            auto [it, first] = retired.try_emplace(tensor);
            if (first) held.push_back(Py_NewRef(tensor));
            it->second.push_back(map[row]);
        }
    stale_.swap(stale);
    foreign_.swap(foreign);
    retired_.swap(retired);
    held_.swap(held);
    released.insert(released.end(), held.begin(), held.end());
}

void ForeignTensors::clear(std::vector<PyObject*>& released) {
    foreign_.clear();
    retired_.clear();
    stale_.clear();
    released.insert(released.end(), held_.begin(), held_.end());
    held_.clear();
}

}  // namespace tapegrad
