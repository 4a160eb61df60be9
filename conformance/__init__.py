"""Run the interpreter's own ``test.test_asyncio`` against aioguest.

Three modes, each in a fresh interpreter per test module (see ``run.py``):

``stock``
    the tests as they are: the baseline every other mode is compared with;
``selector``
    every event loop the tests create runs on :class:`aioguest.GoSelector`;
``guest``
    the same loops, and every ``run_forever``/``run_until_complete`` runs as a
    guest of a trivial host loop on the calling thread.

The swaps happen in ``loops.py`` before the test modules are imported; the
test files themselves are never edited or copied.  ``expected.py`` lists the
differences from ``stock`` that are understood, each with its reason, and
``docs/conformance.md`` explains them and shows the latest results.
"""
