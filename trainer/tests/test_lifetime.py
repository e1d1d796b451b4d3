"""--exit-with-stdin: a server started by another program ends when that program's pipe closes."""

import json
import subprocess
import sys
import unittest
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class ExitWithStdinTest(unittest.TestCase):
    def start_server(self, *flags):
        return subprocess.Popen(
            [sys.executable, "-m", "rollout_trainer.server", "--port", "0", *flags],
            cwd=PACKAGE_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def test_the_server_ends_when_its_stdin_closes(self):
        server = self.start_server("--exit-with-stdin")
        try:
            started = json.loads(server.stdout.readline())
            self.assertIn("url", started)
            server.stdin.close()
            self.assertEqual(server.wait(timeout=20), 0)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()

    def test_a_process_that_ends_on_its_own_with_stdin_open_exits_cleanly(self):
        # A daemon thread blocked in a buffered stdin read made the interpreter abort at exit
        # (SIGABRT, "could not acquire lock ... at interpreter shutdown"): the warm start's crash.
        child = subprocess.Popen(
            [sys.executable, "-c", "from rollout_trainer.lifetime import exit_with_stdin; exit_with_stdin(); print('done')"],
            cwd=PACKAGE_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            out, err = child.stdout.read(), child.stderr.read()
            self.assertEqual(child.wait(timeout=20), 0, err.decode()[-500:])
            self.assertEqual(out.strip(), b"done")
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            child.stdin.close()
            child.stdout.close()
            child.stderr.close()

    def test_without_the_flag_a_closed_stdin_changes_nothing(self):
        server = self.start_server()
        try:
            json.loads(server.stdout.readline())
            server.stdin.close()
            with self.assertRaises(subprocess.TimeoutExpired):
                server.wait(timeout=1.5)
        finally:
            server.kill()
            server.wait()
            server.stdout.close()


if __name__ == "__main__":
    unittest.main()
