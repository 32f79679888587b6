#include "tape_labels.hpp"

#include <algorithm>
#include <string>

namespace tapegrad {

namespace {

// numbered_ entries for tensors with no node (constants) keep the previous
// entry's node with this bit set, so the column stays sorted.
constexpr uint32_t NO_NODE_BIT = 0x80000000u;

// A copy of `dict` whose nodes (its keys, or its values) are renumbered by
// `map`, without the entries of dropped rows (nor those that fail to copy);
// nullptr with an error set when no dict can be made.
PyObject* renumbered(PyObject* dict, const RowMap& map, bool nodes_are_keys) {
    PyObject* out = PyDict_New();
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (out && PyDict_Next(dict, &pos, &key, &value)) {
        const size_t row = PyLong_AsSize_t(nodes_are_keys ? key : value);
        if (!map.kept(row)) continue;
        PyObject* node = PyLong_FromUnsignedLong(map[row]);
        if (node) PyDict_SetItem(out, nodes_are_keys ? node : key, nodes_are_keys ? value : node);
        Py_XDECREF(node);
    }
    return out;
}

}  // namespace

Labels::Labels() : node_by_label_(PyDict_New()), label_by_node_(PyDict_New()) {}

Labels::~Labels() {
    Py_XDECREF(node_by_label_);
    Py_XDECREF(label_by_node_);
}

void Labels::set_num_node(int64_t num, uint32_t node) {
    if (num - base_ == static_cast<int64_t>(numbered_.size()) && overflow_.empty()) {
        if (node == UINT32_MAX)
            node = numbered_.empty() ? NO_NODE_BIT : (numbered_.back() | NO_NODE_BIT);
        numbered_.push_back(node);
    } else if (node != UINT32_MAX) {
        overflow_[num] = node;
    } else {
        overflow_.erase(num);
    }
}

uint32_t Labels::node_of_num(int64_t num) const {
    if (!overflow_.empty()) {
        auto it = overflow_.find(num);
        if (it != overflow_.end()) return it->second;
    }
    const int64_t index = num - base_;
    if (index >= 0 && index < static_cast<int64_t>(numbered_.size()) &&
        !(numbered_[static_cast<size_t>(index)] & NO_NODE_BIT))
        return numbered_[static_cast<size_t>(index)];
    return UINT32_MAX;
}

PyObject* Labels::label_of(uint32_t node) const {
    PyObject* key = PyLong_FromUnsignedLong(node);
    if (!key) return nullptr;
    PyObject* label = PyDict_GetItemWithError(label_by_node_, key);
    Py_DECREF(key);
    if (label) return Py_NewRef(label);
    if (PyErr_Occurred()) return nullptr;
    auto masked_less = [](uint32_t entry, uint32_t n) { return (entry & ~NO_NODE_BIT) < n; };
    auto it = std::lower_bound(numbered_.begin(), numbered_.end(), node, masked_less);
    if (it != numbered_.end() && *it == node)
        return PyUnicode_FromFormat("tensor_%lld",
                                    static_cast<long long>(base_ + (it - numbered_.begin())));
    for (const auto& [num, n] : overflow_)
        if (n == node) return PyUnicode_FromFormat("tensor_%lld", static_cast<long long>(num));
    Py_RETURN_NONE;
}

uint32_t Labels::node_of_label(PyObject* label) const {
    PyObject* node = PyDict_GetItemWithError(node_by_label_, label);
    if (node) return static_cast<uint32_t>(PyLong_AsUnsignedLong(node));
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return UINT32_MAX;
    }
    // A default label: tensor_<digits>.
    Py_ssize_t size = 0;
    const char* text = PyUnicode_AsUTF8AndSize(label, &size);
    if (!text) {
        PyErr_Clear();
        return UINT32_MAX;
    }
    std::string s(text, static_cast<size_t>(size));
    const std::string prefix = "tensor_";
    if (s.size() <= prefix.size() || s.compare(0, prefix.size(), prefix) != 0) return UINT32_MAX;
    std::string digits = s.substr(prefix.size());
    if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit))
        return UINT32_MAX;
    const int64_t num = std::stoll(digits);
    const uint32_t own = node_of_num(num);
    auto it = foreign_numbers_.find(num);
    if (it == foreign_numbers_.end()) return own;
    return own == UINT32_MAX || own == it->second ? it->second : AMBIGUOUS;
}

bool Labels::name(uint32_t node, PyObject* label) {
    PyObject* key = PyLong_FromUnsignedLong(node);
    const bool ok = key && PyDict_SetItem(node_by_label_, label, key) == 0 &&
                    PyDict_SetItem(label_by_node_, key, label) == 0;
    Py_XDECREF(key);
    return ok;
}

bool Labels::name_by_number(uint32_t node, int64_t num, bool foreign) {
    if (foreign) foreign_numbers_[num] = node;
    PyObject* key = PyLong_FromUnsignedLong(node);
    PyObject* label = key ? PyUnicode_FromFormat("tensor_%lld", static_cast<long long>(num)) : nullptr;
    const bool ok = label && PyDict_SetItem(label_by_node_, key, label) == 0;
    Py_XDECREF(key);
    Py_XDECREF(label);
    return ok;
}

void Labels::remap(const RowMap& map, std::vector<PyObject*>& released) {
    // Explicit labels: both dicts rebuilt with the new nodes.
    PyObject* by_label = renumbered(node_by_label_, map, false);
    PyObject* by_node = renumbered(label_by_node_, map, true);
    PyErr_Clear();  // a failed label entry only loses a name for display
    std::swap(node_by_label_, by_label);
    std::swap(label_by_node_, by_node);
    released.push_back(by_label);  // the old dicts
    released.push_back(by_node);
    // tensor_N: the column stays sorted; numbers at the front that name no
    // row any more are dropped.
    for (uint32_t& e : numbered_) {
        const uint32_t node = e & ~NO_NODE_BIT;
        const bool real = !(e & NO_NODE_BIT) && map.kept(node);
        e = real ? map[node] : (map.kept_below(node) | NO_NODE_BIT);
    }
    size_t dead = 0;
    while (dead < numbered_.size() && (numbered_[dead] & NO_NODE_BIT)) ++dead;
    numbered_.erase(numbered_.begin(), numbered_.begin() + static_cast<std::ptrdiff_t>(dead));
    base_ += static_cast<int64_t>(dead);
    for (auto it = overflow_.begin(); it != overflow_.end();) {
        if (map.kept(it->second)) {
            it->second = map[it->second];
            ++it;
        } else {
            it = overflow_.erase(it);
        }
    }
    std::unordered_map<int64_t, uint32_t> numbers;
    for (const auto& [num, row] : foreign_numbers_)
        if (map.kept(row)) numbers[num] = map[row];
    foreign_numbers_.swap(numbers);
}

void Labels::clear(bool restart_numbers) {
    foreign_numbers_.clear();
    numbered_.clear();
    overflow_.clear();
    if (restart_numbers) counter_ = 0;
    base_ = counter_;
    if (node_by_label_) PyDict_Clear(node_by_label_);
    if (label_by_node_) PyDict_Clear(label_by_node_);
}

}  // namespace tapegrad
