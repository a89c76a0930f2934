"""The one runner of the Python client tests (tests/sdk, tests/mcp): every function of a module
whose name starts with a prefix, in name order; a failure is printed with its traceback and
the others still run; exits 1 when any failed."""
import asyncio
import inspect
import sys
import traceback


def run(label, namespace, prefix):
    tests = [v for k, v in sorted(namespace.items()) if k.startswith(prefix) and callable(v)]
    failed = 0
    for t in tests:
        try:
            if inspect.iscoroutinefunction(t):
                asyncio.run(t())
            else:
                t()
            print(f"ok {t.__name__}")
        except Exception:
            failed += 1
            print(f"FAILED {t.__name__}")
            traceback.print_exc()
    print(f"{label}: {len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
