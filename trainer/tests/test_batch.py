"""The batch-file reader on hand-made files: a two-sequence batch read back field by field, and
each kind of malformed batch refused naming the tensor or field."""
import json
import struct
import unittest

import torch

from rollout_trainer.batch import BatchError, read_batch, write_batch
from rollout_trainer.safetensors import from_bytes, to_bytes

SEQS = [
    {"token_ids": [1, 2, 3, 4], "loss_mask": [0, 0, 1, 1], "logprobs": [0, 0, -0.5, -0.25], "advantages": [0, 0, 1, 1], "versions": [-1, -1, 3, 3], "temperature": 1.0, "info": {"episode": "e1"}},
    {"token_ids": [1, 5, 6], "loss_mask": [0, 1, 1], "logprobs": [0, -1, -2], "advantages": [0, -1, -1], "versions": [-1, 2, 3], "temperature": 0.7, "info": {"episode": "e2"}},
]


class BatchTest(unittest.TestCase):
    def test_hand_made_batch_reads_back(self):
        batch = read_batch(write_batch(SEQS, 4, "run-1"))
        self.assertEqual((batch.run, batch.step, len(batch.sequences)), ("run-1", 4, 2))
        a, b = batch.sequences
        self.assertEqual(a.token_ids.tolist(), [1, 2, 3, 4])
        self.assertEqual(a.loss_mask.tolist(), [False, False, True, True])
        self.assertEqual(a.logprobs.tolist(), [0, 0, -0.5, -0.25])
        self.assertEqual(b.versions.tolist(), [-1, 2, 3])
        self.assertAlmostEqual(b.temperature, 0.7, places=6)
        self.assertEqual(b.info, {"episode": "e2"})
        self.assertEqual(json.loads(batch.metadata["lags"]), [{"lag": 1, "tokens": 3}, {"lag": 2, "tokens": 1}])

    def _mutate(self, change):
        tensors, meta = from_bytes(write_batch(SEQS, 4))
        change(tensors, meta)
        return to_bytes(tensors, meta)

    def test_malformed_batches_name_the_problem(self):
        cases = [
            (lambda t, m: m.update(format="other"), "format"),
            (lambda t, m: t.pop("advantages"), "tensor advantages is missing"),
            (lambda t, m: t.update(token_ids=t["token_ids"].long()), "token_ids must be 1-D I32"),
            (lambda t, m: t.update(logprobs=t["logprobs"][:3]), "logprobs has 3 entries"),
            (lambda t, m: t.update(seq_offsets=torch.tensor([0, 5, 4], dtype=torch.int64)), "seq_offsets must rise"),
            (lambda t, m: t.update(temperature=torch.tensor([1.0], dtype=torch.float32)), "temperature has 1 entries for 2"),
            (lambda t, m: t.update(temperature=torch.tensor([1.0, 0.0], dtype=torch.float32)), "sequence 1 has temperature 0"),
            (lambda t, m: m.update(step="four"), "step 'four'"),
            (lambda t, m: m.update(sequences="[{}]"), "lists 1 sequences"),
        ]
        for change, message in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(BatchError, message):
                    read_batch(self._mutate(change))
        with self.assertRaisesRegex(BatchError, "shorter than"):
            read_batch(struct.pack("<I", 1))


if __name__ == "__main__":
    unittest.main()
