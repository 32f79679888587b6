"""No silent wrong gradient when values change: in-place updates, `.data =`, writes
into arrays the user still holds, and memory tapegrad reuses.

The rule (README, Guarantees): a recorded graph keeps the values it saw. Every
gradient call on it answers for the tensor objects themselves, with those values,
whatever happened to the tensors or to the caller's arrays afterwards.
"""

import weakref

import numpy as np

import tapegrad as tg

BIG = 100_000  # 800 KB of float64: pooled, and large enough for temporaries


# ---- memory the user can still see is never reused (Note [Unseen arrays]) ----


def test_the_pool_never_revives_an_array_the_user_still_refers_to_weakly():
    x = tg.Tensor(np.ones(BIG))
    c = np.full(BIG, 7.0)
    ref = weakref.ref(c)
    (x * c).sum().backward()
    del c
    tg.clear_history()
    z = x * 5.0
    np.testing.assert_array_equal(z.data, 5.0)
    # Either the array was freed (our reference was the last strong one), or it
    # still holds what the user wrote; never z's values.
    assert ref() is None or (ref() == 7.0).all()


def test_a_weakly_held_result_array_is_not_taken_for_a_temporary():
    x = tg.Tensor(np.ones(BIG))
    refs = []

    def watched(t):
        refs.append(weakref.ref(t.data))
        return t

    z = watched(x * 2.0) + 1.0  # the product is a temporary, but its array is watched
    np.testing.assert_array_equal(z.data, 3.0)
    assert refs[0]() is None or (refs[0]() == 2.0).all()
