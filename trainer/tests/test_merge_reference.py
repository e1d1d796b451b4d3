"""The torch merge reference (rollout_trainer.merge_reference) on hand-computed fixtures: linear,
SLERP and its parallel fallback, task arithmetic, TIES (pruning, sign election with a cancelling
mass), DARE's seeded drop and both rescalings, values over layers, and a whole merge through
model folders (one file and sharded) that leaves a model merged with itself unchanged."""
import json
import math
import os
import tempfile
import unittest

import torch

from rollout_trainer import merge_reference as ref
from rollout_trainer.safetensors import load, save


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


class MergeFormulasTest(unittest.TestCase):
    def test_linear(self):
        # (1·1 + 3·3) / 4 = 2.5, (1·2 + 3·6) / 4 = 5
        self.assertEqual(ref.linear([t(1, 2), t(3, 6)], [1, 3], True).tolist(), [2.5, 5.0])
        self.assertEqual(ref.linear([t(1), t(-1), t(4)], [2, 1, 0.5], False).tolist(), [3.0])

    def test_slerp_on_the_arc_and_the_parallel_fallback(self):
        out = ref.slerp(0.5, t(1, 0), t(0, 1))
        self.assertAlmostEqual(out[0].item(), math.sqrt(0.5), places=6)
        self.assertAlmostEqual(out[1].item(), math.sqrt(0.5), places=6)
        self.assertEqual(ref.slerp(0.25, t(1, 2), t(2, 4)).tolist(), [1.25, 2.5])

    def test_ties(self):
        p = {"density": 0.5, "lambda": 1, "normalize": True, "rescale": "l1", "seed": 0}
        out = ref.task_vectors("x", t(0, 0, 0, 0), [t(3, -1, 0.5, -2), t(-1, 2, 1, -3)], [1, 1], "ties", p)
        self.assertEqual(out.tolist(), [3.0, 2.0, 0.0, -2.5])
        # a mass that cancels exactly elects +
        p["density"] = 1
        self.assertEqual(ref.task_vectors("x", t(5), [t(6), t(4)], [1, 1], "ties", p).tolist(), [6.0])

    def test_task_arithmetic(self):
        p = {"density": 1, "lambda": 2, "normalize": False, "rescale": "l1", "seed": 0}
        out = ref.task_vectors("x", t(1, 1, 1), [t(2, 0, 1), t(1, 3, 1)], [1, 0.5], "task_arithmetic", p)
        self.assertEqual(out.tolist(), [3.0, 1.0, 1.0])

    def test_magnitude_ties_go_to_the_lower_index(self):
        self.assertEqual(ref.magnitude(t(1, -1, 1, 0.5), 0.5).tolist(), [1.0, -1.0, 0.0, 0.0])

    def test_dare_keeps_by_the_stream_and_rescales(self):
        delta = torch.arange(1000, dtype=torch.float32) % 7 - 2.75
        keep = ref.stream_uniform(ref.stream_key(7, 0, "w"), 1000) < 0.3
        none = ref.random_drop(delta, 0.3, "none", 7, 0, "w")
        self.assertTrue(torch.equal(none, delta * keep))
        inverse = ref.random_drop(delta, 0.3, "inverse", 7, 0, "w")
        self.assertTrue(torch.allclose(inverse, delta * keep / 0.3))
        l1 = ref.random_drop(delta, 0.3, "l1", 7, 0, "w")
        self.assertAlmostEqual(l1.abs().sum().item(), delta.abs().sum().item(), places=1)
        self.assertTrue(250 < int(keep.sum()) < 350)

    def test_the_stream_is_32_bit_integer_arithmetic(self):
        # the finalizer of 0 is 0; mul32 wraps like Math.imul (as unsigned)
        self.assertEqual(ref.mix32(0), 0)
        self.assertEqual(ref.mul32(0xFFFFFFFF, 0xFFFFFFFF), 1)
        self.assertEqual(ref.mul32(0x12345678, 0x9E3779B9), (0x12345678 * 0x9E3779B9) % 2**32)
        i = torch.tensor([0xFFFFFFFF, 0x80000000, 3], dtype=torch.int64)
        self.assertEqual(ref.mul32(i, 0x85EBCA6B).tolist(), [(v * 0x85EBCA6B) % 2**32 for v in i.tolist()])

    def test_values_over_layers(self):
        self.assertEqual(ref.value_at([0, 1, 0], 0.75), 0.5)
        self.assertEqual(ref.value_at(0.3, 1.0), 0.3)
        self.assertEqual(ref.depth("model.layers.2.w", 5), 0.5)
        self.assertEqual(ref.depth("model.embed_tokens.weight", 5), 0.0)
        self.assertEqual(ref.depth("lm_head.weight", 5), 1.0)
        self.assertEqual(ref.layer_count(["model.layers.0.a", "model.layers.3.b", "x"]), 4)


class MergeFoldersTest(unittest.TestCase):
    def test_a_model_merged_with_itself_is_the_model(self):
        with tempfile.TemporaryDirectory() as root:
            torch.manual_seed(0)
            tensors = {
                "model.embed_tokens.weight": torch.randn(4, 3).bfloat16(),
                "model.layers.0.w": torch.randn(3, 3).bfloat16(),
                "model.layers.1.w": torch.randn(3, 3).bfloat16(),
                "positions": torch.arange(4),
            }
            base = os.path.join(root, "base")
            os.makedirs(base)
            save(os.path.join(base, "model.safetensors"), tensors)
            sharded = os.path.join(root, "sharded")
            os.makedirs(sharded)
            names = sorted(tensors)
            shards = {"a.safetensors": names[:2], "b.safetensors": names[2:]}
            for shard, keys in shards.items():
                save(os.path.join(sharded, shard), {k: tensors[k] for k in keys})
            with open(os.path.join(sharded, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {}, "weight_map": {k: s for s, ks in shards.items() for k in ks}}, f)
            for method, params in [("linear", {}), ("slerp", {"t": 0.4}), ("ties", {"density": 0.5}), ("dare_ties", {"density": 0.5})]:
                out = os.path.join(root, f"out-{method}")
                spec = {"method": method, "base": base, "models": [{"dir": sharded}], "params": params, "out": out}
                self.assertEqual(ref.main(["--spec", json.dumps(spec)]), 0)
                merged, _ = load(os.path.join(out, "model.safetensors"))
                for name, tensor in tensors.items():
                    self.assertEqual(merged[name].dtype, tensor.dtype, f"{method} {name}")
                    self.assertTrue(torch.equal(merged[name], tensor), f"{method} {name}")


if __name__ == "__main__":
    unittest.main()
