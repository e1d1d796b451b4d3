"""Lists or runs the trainer's unittest suite for tests/integration/python.test.ts:
`--list` prints the test ids as a JSON array; `--results FILE` runs every test and writes
{id: {outcome, detail}} (outcome pass, fail, error or skip; detail the traceback or reason)."""
from __future__ import annotations

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def suite() -> unittest.TestSuite:
    return unittest.defaultTestLoader.discover(HERE, pattern="test_*.py", top_level_dir=os.path.dirname(HERE))


def ids(s) -> list[str]:
    out = []
    for t in s:
        if isinstance(t, unittest.TestSuite):
            out.extend(ids(t))
        else:
            out.append(t.id())
    return out


class Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, dict] = {}

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes[test.id()] = {"outcome": "pass", "detail": ""}

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes[test.id()] = {"outcome": "fail", "detail": self.failures[-1][1]}

    def addError(self, test, err):
        super().addError(test, err)
        self.outcomes[test.id()] = {"outcome": "error", "detail": self.errors[-1][1]}

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes[test.id()] = {"outcome": "skip", "detail": reason}


def main(argv: list[str]) -> int:
    s = suite()
    if argv[:1] == ["--list"]:
        broken = [t for t in ids(s) if t.startswith("unittest.loader")]
        print(json.dumps(ids(s)))
        return 1 if broken else 0
    if argv[:1] == ["--results"] and len(argv) == 2:
        runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=1, resultclass=Recorder)
        result = runner.run(s)
        with open(argv[1], "w") as f:
            json.dump(result.outcomes, f)
        return 0 if result.wasSuccessful() else 1
    result = unittest.TextTestRunner(verbosity=2).run(s)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
