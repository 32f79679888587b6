// Note [Contractions] is in contract.hpp.
#include "contract.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "arrays.hpp"

namespace tapegrad {

namespace {

using Dims = std::vector<npy_intp>;
using Perm = std::vector<int>;

PyObject* check(PyObject* o) {
    if (!o) throw py::error_already_set();
    return o;
}
py::object steal(PyObject* o) { return py::reinterpret_steal<py::object>(check(o)); }

// Errors as Python errors: a C++ exception would reach the caller as a RuntimeError.
[[noreturn]] void value_error(const std::string& text) {
    PyErr_SetString(PyExc_ValueError, text.c_str());
    throw py::error_already_set();
}
[[noreturn]] void type_error(const std::string& text) {
    PyErr_SetString(PyExc_TypeError, text.c_str());
    throw py::error_already_set();
}

std::string shape_text(const Dims& dims) {
    std::string s = "(";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + (dims.size() == 1 ? ",)" : ")");
}

bool has(const std::string& s, char c) { return s.find(c) != std::string::npos; }

// An operand of a step: its letters and their lengths.
struct Term {
    std::string letters;
    Dims dims;
    npy_intp length(char c) const { return dims[letters.find(c)]; }
    double elements() const {
        double n = 1;
        for (npy_intp d : dims) n *= static_cast<double>(d);
        return n;
    }
};

enum class Kind : uint8_t { VIEW, EINSUM, MULTIPLY, MATMUL };

// What happens to one operand before a step combines it.
struct Prep {
    std::string einsum;  // a one-operand c_einsum spec, "" for none
    Perm perm;           // then a transpose (empty: none)
    Dims shape;          // then a reshape (empty: none)
    bool reshape = false;
};

struct Step {
    int i = 0, j = -1;  // positions in the working list (the matmul's order); j < 0: one operand
    Kind kind = Kind::EINSUM;
    Prep pi, pj;
    std::string spec;  // EINSUM: c_einsum's spec on the prepared operands
    Dims split;        // MATMUL: the product's shape, one axis per letter
    Perm perm;         // MATMUL: then transposed to the step's order (empty: none)
    // MATMUL into the output's layout (out_view empty: not used): an empty
    // array of out_dims, transposed by out_perm and reshaped to out_view, is
    // the product's `out`.
    Dims out_dims, out_view;
    Perm out_perm;
};

struct Plan {
    std::vector<int> arrays;   // operands with axes, in order: the first working list
    std::vector<int> numbers;  // 0-d operands, multiplied in at the end
    std::vector<Step> steps;
};

// Positions in `from` of each letter of `to` (empty when they are the same).
Perm permutation(const std::string& from, const std::string& to) {
    if (from == to) return {};
    Perm p;
    for (char c : to) p.push_back(static_cast<int>(from.find(c)));
    return p;
}

// The distinct letters of s, in order of first appearance.
std::string distinct(const std::string& s) {
    std::string d;
    for (char c : s)
        if (!has(d, c)) d += c;
    return d;
}

npy_intp product(const Term& t, const std::string& letters) {
    npy_intp n = 1;
    for (char c : letters) n *= t.length(c);
    return n;
}

// Whether `a` drops letter c before meeting `b`: a length 1 facing a longer one.
bool drops(const Term& a, const Term& b, char c) {
    return has(b.letters, c) && a.length(c) == 1 && b.length(c) > 1;
}

// The letters `a` keeps for a step with `b`, when `needed` are read later.
std::string kept(const Term& a, const Term& b, const std::string& needed) {
    std::string k;
    for (char c : distinct(a.letters)) {
        if (drops(a, b, c)) continue;
        const bool shared = has(b.letters, c) && !drops(b, a, c);
        if (shared || has(needed, c)) k += c;
    }
    return k;
}

Term restrict(const Term& t, const std::string& letters) {
    Term r{letters, {}};
    for (char c : letters) r.dims.push_back(t.length(c));
    return r;
}

// Letters of `group` ordered as they appear in `order`.
std::string ordered(const std::string& group, const std::string& order) {
    std::string r;
    for (char c : order)
        if (has(group, c)) r += c;
    return r;
}

// One pairwise step on a and b (positions ia, ib); `needed`: the letters read
// after it; `target`: the output's letters for the last step, else nullptr.
Term plan_pair(const Term& a_in, const Term& b_in, int ia, int ib, const std::string& needed,
               const std::string* target, Step& s) {
    const std::string ka = kept(a_in, b_in, needed), kb = kept(b_in, a_in, needed);
    Term a = restrict(a_in, ka), b = restrict(b_in, kb);
    std::string batch, contracted, left, right;
    for (char c : ka) {
        if (!has(kb, c)) left += c;
        else (has(needed, c) ? batch : contracted) += c;
    }
    for (char c : kb)
        if (!has(ka, c)) right += c;
    if (target) {
        batch = ordered(batch, *target), left = ordered(left, *target), right = ordered(right, *target);
    }
    const std::string natural = batch + left + right;
    const std::string tgt = target ? *target : natural;
    Term result{tgt, {}};
    for (char c : tgt) result.dims.push_back(has(ka, c) ? a.length(c) : b.length(c));

    s.i = ia, s.j = ib;
    s.pi.einsum = a_in.letters == ka ? "" : a_in.letters + "->" + ka;
    s.pj.einsum = b_in.letters == kb ? "" : b_in.letters + "->" + kb;
    const npy_intp L = product(a, left), R = product(b, right), C = product(a, contracted);
    if (C == 1) {
        // Nothing to sum: a broadcast multiply, each operand viewed in the
        // result's order with length-1 axes for the other's letters.
        s.kind = Kind::MULTIPLY;
        auto view = [&](const Term& t, Prep& p) {
            std::string order = ordered(t.letters, tgt);
            p.perm = permutation(t.letters, order + ordered(contracted, t.letters));
            for (char c : tgt) p.shape.push_back(has(t.letters, c) ? t.length(c) : 1);
            p.reshape = true;
        };
        view(a, s.pi), view(b, s.pj);
        return result;
    }
    if (product(a, batch) > 1 && (L == 1 || R == 1)) {
        // A batch of matrix-vector (or dot) products: c_einsum's loop beats a
        // BLAS call per matrix.
        s.kind = Kind::EINSUM;
        s.spec = ka + "," + kb + "->" + tgt;
        return result;
    }
    s.kind = Kind::MATMUL;
    const Term* x = &a;
    const Term* y = &b;
    std::string lx = left, ry = right;
    if (target && tgt != natural && tgt == batch + right + left) {  // b @ a gives the order wanted
        std::swap(x, y), std::swap(s.i, s.j), std::swap(s.pi.einsum, s.pj.einsum), std::swap(lx, ry);
    }
    const npy_intp Bt = product(a, batch), Lx = product(*x, lx), Ry = product(*y, ry);
    s.pi.perm = permutation(x->letters, batch + lx + contracted);
    s.pj.perm = permutation(y->letters, batch + contracted + ry);
    s.pi.shape = batch.empty() ? Dims{Lx, C} : Dims{Bt, Lx, C};
    s.pj.shape = batch.empty() ? Dims{C, Ry} : Dims{Bt, C, Ry};
    s.pi.reshape = s.pj.reshape = true;
    const std::string made = batch + lx + ry;
    for (char c : made) s.split.push_back(has(ka, c) ? a.length(c) : b.length(c));
    s.perm = permutation(made, tgt);
    if (!target || s.perm.empty() || Lx < 2 || Ry < 2) return result;
    // The product written into the output's layout: the view of a C-contiguous
    // result in `made`'s order must merge each group's axes and be a matrix
    // BLAS can write (a unit stride along one of its two axes).
    Dims stride(tgt.size());
    npy_intp st = 1;
    for (size_t p = tgt.size(); p-- > 0;) stride[p] = st, st *= result.dims[p];
    auto merges = [&](const std::string& group) {
        for (size_t q = 1; q < group.size(); ++q)
            if (tgt.find(group[q]) != tgt.find(group[q - 1]) + 1) return false;
        return true;
    };
    if (!merges(batch) || !merges(lx) || !merges(ry)) return result;
    const npy_intp sl = stride[tgt.find(lx.back())], sr = stride[tgt.find(ry.back())];
    if (!((sr == 1 && sl >= Ry) || (sl == 1 && sr >= Lx))) return result;
    s.out_dims = result.dims;
    s.out_perm = permutation(tgt, made);
    s.out_view = batch.empty() ? Dims{Lx, Ry} : Dims{Bt, Lx, Ry};
    return result;
}

std::string letters_of(const std::vector<Term>& w, size_t skip1, size_t skip2) {
    std::string s;
    for (size_t k = 0; k < w.size(); ++k)
        if (k != skip1 && k != skip2) s += w[k].letters;
    return s;
}

// The pair to contract first: greedy, the smallest result against its operands.
std::pair<size_t, size_t> choose_pair(const std::vector<Term>& w, const std::string& out) {
    if (w.size() == 2) return {0, 1};
    double best = 0;
    std::pair<size_t, size_t> choice{0, 1};
    bool found = false;
    for (int pass = 0; pass < 2 && !found; ++pass) {  // pairs that share a letter; else any
        for (size_t p = 0; p < w.size(); ++p) {
            for (size_t q = p + 1; q < w.size(); ++q) {
                bool shares = false;
                for (char c : w[p].letters) shares = shares || has(w[q].letters, c);
                if (pass == 0 && !shares) continue;
                const std::string needed = out + letters_of(w, p, q);
                double size = 1;
                for (char c : distinct(w[p].letters + w[q].letters)) {
                    if (!has(needed, c)) continue;
                    npy_intp n = 0;
                    if (has(w[p].letters, c)) n = w[p].length(c);
                    if (has(w[q].letters, c)) n = std::max(n, w[q].length(c));
                    size *= static_cast<double>(n);
                }
                const double cost = size - w[p].elements() - w[q].elements();
                if (!found || cost < best) best = cost, choice = {p, q}, found = true;
            }
        }
    }
    return choice;
}

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::shared_ptr<Plan> build_plan(const std::vector<std::string>& specs, const std::string& out,
                                 const std::vector<Dims>& shapes) {
    if (specs.empty()) value_error("needs at least one operand");
    // Every letter's length, checked as numpy checks: equal, or 1 (broadcast).
    npy_intp length[128];
    int first[128];
    std::fill(std::begin(first), std::end(first), -1);
    for (size_t k = 0; k < specs.size(); ++k) {
        const std::string& s = specs[k];
        if (s.size() != shapes[k].size())
            value_error("'" + s + "' has " + std::to_string(s.size()) + " letters for operand " +
                        std::to_string(k) + " of shape " + shape_text(shapes[k]) +
                        ": give one letter per axis (or '...' for the rest)");
        for (size_t p = 0; p < s.size(); ++p) {
            const char c = s[p];  // a letter: contract() checked
            const npy_intp n = shapes[k][p];
            const size_t here = s.find(c);
            if (here != p && shapes[k][here] != n)
                value_error("letter '" + std::string(1, c) + "' repeats in operand " + std::to_string(k) +
                            " ('" + s + "', shape " + shape_text(shapes[k]) +
                            ") over axes of different lengths; a repeated letter takes a diagonal");
            const int u = static_cast<unsigned char>(c);
            if (first[u] < 0) {
                first[u] = static_cast<int>(k), length[u] = n;
            } else if (n != length[u] && n != 1 && length[u] != 1) {
                value_error("letter '" + std::string(1, c) + "' has length " + std::to_string(length[u]) +
                            " in operand " + std::to_string(first[u]) + " (shape " +
                            shape_text(shapes[static_cast<size_t>(first[u])]) + ") but " + std::to_string(n) +
                            " in operand " + std::to_string(k) + " (shape " + shape_text(shapes[k]) +
                            "); lengths must match or be 1");
            } else if (length[u] == 1) {
                length[u] = n;
            }
        }
    }
    for (size_t p = 0; p < out.size(); ++p) {
        const char c = out[p];
        if (first[static_cast<unsigned char>(c)] < 0)
            value_error("the output '" + out + "' has '" + std::string(1, c) + "', which no input has");
        if (out.find(c) != p) value_error("the output '" + out + "' repeats a letter ('" + std::string(1, c) +
                                                "'); each output letter appears once");
    }
    auto plan = std::make_shared<Plan>();
    std::vector<Term> w;
    for (size_t k = 0; k < specs.size(); ++k) {
        if (shapes[k].empty()) {
            plan->numbers.push_back(static_cast<int>(k));
        } else {
            plan->arrays.push_back(static_cast<int>(k));
            w.push_back(Term{specs[k], shapes[k]});
        }
    }
    if (w.size() == 1) {
        Step s;
        s.kind = w[0].letters == out ? Kind::VIEW : Kind::EINSUM;
        s.spec = w[0].letters + "->" + out;
        plan->steps.push_back(std::move(s));
    }
    while (w.size() > 1) {
        const auto [p, q] = choose_pair(w, out);
        const std::string needed = out + letters_of(w, p, q);
        Step s;
        Term r = plan_pair(w[p], w[q], static_cast<int>(p), static_cast<int>(q), needed,
                           w.size() == 2 ? &out : nullptr, s);
        w.erase(w.begin() + static_cast<long>(q));
        w.erase(w.begin() + static_cast<long>(p));
        w.push_back(std::move(r));
        plan->steps.push_back(std::move(s));
    }
    return plan;
}

// ---- running a plan ----

struct Numpy {
    py::object c_einsum, matmul;
    Numpy() {
        matmul = py::module_::import("numpy").attr("matmul");
        try {
            c_einsum = py::module_::import("numpy._core.multiarray").attr("c_einsum");
        } catch (py::error_already_set&) {  // numpy's private name moved: its public einsum
            c_einsum = py::module_::import("numpy").attr("einsum");
        }
    }
};
Numpy& numpy() {
    static Numpy* n = new Numpy();  // lives as long as the process
    return *n;
}

PyArrayObject* arr(const py::object& o) { return reinterpret_cast<PyArrayObject*>(o.ptr()); }

py::object transpose(const py::object& a, const Perm& perm) {
    std::vector<npy_intp> axes(perm.begin(), perm.end());
    PyArray_Dims d = {axes.data(), static_cast<int>(axes.size())};
    return steal(PyArray_Transpose(arr(a), &d));
}

py::object reshape(const py::object& a, const Dims& shape) {
    Dims s = shape;
    PyArray_Dims d = {s.data(), static_cast<int>(s.size())};
    return steal(PyArray_Newshape(arr(a), &d, NPY_CORDER));
}

// c_einsum and ufuncs return numpy scalars for 0-d results; the C API below wants arrays.
py::object as_array(py::object a) {
    if (PyArray_Check(a.ptr())) return a;
    return steal(PyArray_FROM_O(a.ptr()));
}

py::object prepare(const Prep& p, py::object a) {
    if (!p.einsum.empty()) a = as_array(numpy().c_einsum(p.einsum, a));
    if (!p.perm.empty()) a = transpose(a, p.perm);
    if (p.reshape) a = reshape(a, p.shape);
    return a;
}

// Whether numpy's matmul can hand this stack of matrices to BLAS (its
// is_blasable2d, either way round); else it runs a naive loop.
bool blasable(const py::object& a) {
    PyArrayObject* x = arr(a);
    const int nd = PyArray_NDIM(x);
    const npy_intp sz = PyArray_ITEMSIZE(x), m = PyArray_DIM(x, nd - 2), n = PyArray_DIM(x, nd - 1);
    const npy_intp sm = PyArray_STRIDE(x, nd - 2), sn = PyArray_STRIDE(x, nd - 1);
    auto fits = [&](npy_intp s1, npy_intp s2, npy_intp d2) {
        return s2 == sz && s1 % sz == 0 && s1 / sz >= d2;
    };
    return fits(sm, sn, n) || fits(sn, sm, m);
}

py::object for_blas(py::object a) {
    if (blasable(a)) return a;
    return steal(PyArray_NewCopy(arr(a), NPY_CORDER));
}

py::object run_step(const Step& s, const py::object& a, const py::object& b) {
    switch (s.kind) {
        case Kind::VIEW:
            return steal(PyArray_View(arr(a), nullptr, nullptr));
        case Kind::EINSUM:
            if (s.j < 0) return as_array(numpy().c_einsum(s.spec, a));
            return as_array(numpy().c_einsum(s.spec, prepare(s.pi, a), prepare(s.pj, b)));
        case Kind::MULTIPLY:
            return as_array(steal(PyNumber_Multiply(prepare(s.pi, a).ptr(), prepare(s.pj, b).ptr())));
        case Kind::MATMUL:
            break;
    }
    py::object x = for_blas(prepare(s.pi, a)), y = for_blas(prepare(s.pj, b));
    if (!s.out_view.empty() && PyArray_TYPE(arr(x)) == PyArray_TYPE(arr(y))) {
        Dims dims = s.out_dims;
        py::object out = steal(PyArray_Empty(static_cast<int>(dims.size()), dims.data(),
                                             PyArray_DescrFromType(PyArray_TYPE(arr(x))), 0));
        py::object view = reshape(transpose(out, s.out_perm), s.out_view);
        // The plan checked that the axes merge; a copy would leave `out` unwritten.
        if (PyArray_DATA(arr(view)) == PyArray_DATA(arr(out)) &&
            !PyArray_CHKFLAGS(arr(view), NPY_ARRAY_OWNDATA)) {
            numpy().matmul(x, y, py::arg("out") = view);
            return out;
        }
    }
    py::object r = reshape(numpy().matmul(x, y), s.split);
    return s.perm.empty() ? r : transpose(r, s.perm);
}

py::object run(const Plan& plan, const std::vector<py::object>& x) {
    std::vector<py::object> w;
    for (int k : plan.arrays) w.push_back(x[static_cast<size_t>(k)]);
    for (const Step& s : plan.steps) {
        py::object a = w[static_cast<size_t>(s.i)];
        py::object b = s.j < 0 ? py::none() : w[static_cast<size_t>(s.j)];
        py::object r = run_step(s, a, b);
        if (s.j >= 0) {
            const size_t hi = static_cast<size_t>(std::max(s.i, s.j));
            const size_t lo = static_cast<size_t>(std::min(s.i, s.j));
            w.erase(w.begin() + static_cast<long>(hi));
            w.erase(w.begin() + static_cast<long>(lo));
        } else {
            w.erase(w.begin() + s.i);
        }
        w.push_back(std::move(r));
    }
    py::object result = w.empty() ? py::object(py::float_(1.0)) : w[0];
    for (size_t n = 0; n < plan.numbers.size(); ++n) {
        const py::object& v = x[static_cast<size_t>(plan.numbers[n])];
        result = w.empty() && n == 0 ? v : steal(PyNumber_Multiply(result.ptr(), v.ptr()));
    }
    return result;
}

// Plans by spec and shapes. Bounded: emptied when full (a program uses a few).
constexpr size_t MAX_PLANS = 512;
std::unordered_map<std::string, std::shared_ptr<Plan>>& plans() {
    static auto* cache = new std::unordered_map<std::string, std::shared_ptr<Plan>>();
    return *cache;
}

}  // namespace

py::object contract(const py::tuple& specs_obj, const py::object& out_obj,
                    const std::vector<py::object>& x_in) {
    if (!py::isinstance<py::str>(out_obj))
        type_error("the output spec must be a str, got " + std::string(Py_TYPE(out_obj.ptr())->tp_name));
    if (py::len(specs_obj) != x_in.size())
        value_error(std::to_string(py::len(specs_obj)) + " input specs for " +
                    std::to_string(x_in.size()) + " operands");
    auto letters_only = [](const std::string& s) {
        for (char c : s)
            if (!is_letter(c))
                value_error("invalid subscript '" + std::string(1, c) + "' in '" + s +
                            "': subscripts are letters a-z, A-Z");
        return s;
    };
    std::vector<std::string> specs;
    std::vector<py::object> x;
    std::vector<Dims> shapes;
    std::string key;
    for (size_t k = 0; k < x_in.size(); ++k) {
        if (!py::isinstance<py::str>(specs_obj[k]))
            type_error("input specs must be str, got " + std::string(Py_TYPE(specs_obj[k].ptr())->tp_name));
        specs.push_back(letters_only(specs_obj[k].cast<std::string>()));
        py::object v = x_in[k];
        if (!PyArray_Check(v.ptr()) && !PyFloat_Check(v.ptr())) v = steal(PyArray_FROM_O(v.ptr()));
        Dims d;
        if (PyArray_Check(v.ptr()))
            d.assign(PyArray_DIMS(arr(v)), PyArray_DIMS(arr(v)) + PyArray_NDIM(arr(v)));
        key += specs.back() + ":";
        for (npy_intp n : d) key += std::to_string(n) + ".";
        key += ",";
        shapes.push_back(std::move(d));
        x.push_back(std::move(v));
    }
    const std::string out = letters_only(out_obj.cast<std::string>());
    key += ">" + out;
    auto& cache = plans();
    auto found = cache.find(key);
    std::shared_ptr<Plan> plan;
    if (found != cache.end()) {
        plan = found->second;
    } else {
        plan = build_plan(specs, out, shapes);
        if (cache.size() >= MAX_PLANS) cache.clear();
        cache.emplace(std::move(key), plan);
    }
    // Mixed dtypes compute in the promoted one, as numpy's einsum does: a
    // float32 operand summed before it meets a float64 one would lose digits.
    std::vector<PyArrayObject*> arrays;
    for (const py::object& v : x)
        if (PyArray_Check(v.ptr())) arrays.push_back(arr(v));
    for (size_t k = 1; k < arrays.size(); ++k) {
        if (PyArray_TYPE(arrays[k]) == PyArray_TYPE(arrays[0])) continue;
        PyArray_Descr* common =
            PyArray_ResultType(static_cast<npy_intp>(arrays.size()), arrays.data(), 0, nullptr);
        if (!common) throw py::error_already_set();
        for (py::object& v : x) {
            if (!PyArray_Check(v.ptr()) || PyArray_TYPE(arr(v)) == common->type_num) continue;
            Py_INCREF(common);  // PyArray_CastToType steals it
            v = steal(PyArray_CastToType(arr(v), common, 0));
        }
        Py_DECREF(common);
        break;
    }
    return run(*plan, x);  // holds the plan: another thread may empty the cache meanwhile
}

size_t contraction_plans_cached() { return plans().size(); }

}  // namespace tapegrad
