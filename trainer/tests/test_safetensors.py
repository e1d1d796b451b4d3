"""The safetensors reader and writer: round trips of every dtype, the reference layout, and
malformed files refused with the field named."""
import json
import struct
import unittest

import torch

from rollout_trainer.safetensors import SafetensorsError, from_bytes, to_bytes


class SafetensorsTest(unittest.TestCase):
    def test_round_trip_every_dtype(self):
        tensors = {
            "f64": torch.randn(2, 3, dtype=torch.float64),
            "f32": torch.randn(4),
            "f16": torch.randn(3).half(),
            "bf16": torch.randn(5).bfloat16(),
            "i64": torch.arange(-3, 3, dtype=torch.int64),
            "i32": torch.tensor([1, -2], dtype=torch.int32),
            "i16": torch.tensor([7], dtype=torch.int16),
            "i8": torch.tensor([-1], dtype=torch.int8),
            "u8": torch.tensor([255, 0], dtype=torch.uint8),
            "bool": torch.tensor([True, False]),
            "empty": torch.zeros(0, 3),
        }
        back, meta = from_bytes(to_bytes(tensors, {"k": "v"}))
        self.assertEqual(meta, {"k": "v"})
        self.assertEqual(set(back), set(tensors))
        for name, t in tensors.items():
            self.assertEqual(back[name].dtype, t.dtype, name)
            self.assertTrue(torch.equal(back[name], t), name)

    def test_reference_layout(self):
        blob = to_bytes({"b": torch.zeros(1, dtype=torch.uint8), "a": torch.zeros(1, dtype=torch.int64), "c": torch.zeros(2)})
        (n,) = struct.unpack("<Q", blob[:8])
        self.assertEqual(n % 8, 0)
        header = json.loads(blob[8 : 8 + n])
        # Larger dtypes first, then by name; data contiguous from 0.
        self.assertEqual([k for k in header], ["a", "c", "b"])
        self.assertEqual(header["a"]["data_offsets"], [0, 8])
        self.assertEqual(header["c"]["data_offsets"], [8, 16])
        self.assertEqual(header["b"]["data_offsets"], [16, 17])

    def _with_header(self, header: dict, data: bytes = b"") -> bytes:
        text = json.dumps(header).encode()
        return struct.pack("<Q", len(text)) + text + data

    def test_malformed_files_name_the_field(self):
        cases = [
            (b"123", "shorter than the 8-byte"),
            (struct.pack("<Q", 1000) + b"{}", "runs past the file"),
            (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
            (struct.pack("<Q", 2) + b"{x", "not JSON"),
            (self._with_header({"t": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), r"t.dtype 'Q9'"),
            (self._with_header({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "t.shape"),
            (self._with_header({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4), "needs 8"),
            (self._with_header({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 4), "data_offsets"),
            (self._with_header({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8), "a hole or an overlap"),
            (self._with_header({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 6), "bytes after the last tensor"),
            (self._with_header({"__metadata__": {"a": 1}}), "__metadata__"),
        ]
        for blob, message in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(SafetensorsError, message):
                    from_bytes(blob)


if __name__ == "__main__":
    unittest.main()


class TypeScriptWriterTest(unittest.TestCase):
    """The TypeScript writer (src/events/tensors/safetensors.ts, built to dist/) and this one agree
    byte for byte, and this reader reads what it writes: the batch files cross that boundary."""

    def test_typescript_writer_bytes_equal_and_read_back(self):
        import os
        import shutil
        import subprocess

        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        built = os.path.join(repo, "dist", "src", "events", "tensors", "safetensors.js")
        node = shutil.which("node")
        if node is None or not os.path.exists(built):
            self.skipTest("needs node and the build (npm run build)")
        script = (
            f"import {{ writeSafetensors }} from {json.dumps(built)};"
            "const r = writeSafetensors({"
            "token_ids: {dtype: 'I32', shape: [3], data: new Int32Array([5, -1, 7])},"
            "seq_offsets: {dtype: 'I64', shape: [2], data: new BigInt64Array([0n, 3n])},"
            "logprobs: {dtype: 'F32', shape: [3], data: new Float32Array([-0.5, 0, -1.25])},"
            "loss_mask: {dtype: 'U8', shape: [3], data: new Uint8Array([0, 1, 1])},"
            "}, {format: 'rollout.batch.v1', step: '3'});"
            "process.stdout.write(Buffer.from(r.success ?? r.value ?? r));"
        )
        blob = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, check=True, timeout=60).stdout
        tensors, meta = from_bytes(blob)
        self.assertEqual(meta, {"format": "rollout.batch.v1", "step": "3"})
        self.assertEqual(tensors["token_ids"].tolist(), [5, -1, 7])
        self.assertEqual(tensors["seq_offsets"].tolist(), [0, 3])
        self.assertEqual(tensors["logprobs"].tolist(), [-0.5, 0, -1.25])
        self.assertEqual(tensors["loss_mask"].dtype, torch.uint8)
        self.assertEqual(to_bytes(tensors, meta), blob)
