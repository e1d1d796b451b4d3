"""The vocabulary and chat template: round trips, the prefix property the drift guard relies on,
and tool calls read as vLLM's hermes parser reads them."""
import json
import random
import unittest

from rollout_trainer.calc_task import CALCULATOR_TOOL, demonstration, make_tasks
from rollout_trainer.vocab import IM_END, VOCAB, TemplateError, parse_tool_calls, render, render_ids, tool_call_text


class VocabularyTest(unittest.TestCase):
    def test_random_text_round_trips(self):
        rng = random.Random(1)
        alphabet = "abc 123*{}\"\n<>|/_é漢🙂" + "".join(VOCAB.pieces[:6]) + "<|im_end|><tool_call>"
        for _ in range(500):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            self.assertEqual(VOCAB.decode(VOCAB.encode(text)), text)

    def test_specials_and_pieces_are_single_tokens(self):
        self.assertEqual(VOCAB.encode("<|im_end|>"), [IM_END])
        self.assertEqual(len(VOCAB.encode('{"name": "calculator", "arguments": {"expression": "')), 1)
        self.assertEqual(VOCAB.encode("é"), [VOCAB.byte_base + 0xC3, VOCAB.byte_base + 0xA9])

    def test_ids_out_of_range_are_refused(self):
        with self.assertRaisesRegex(ValueError, "outside the vocabulary"):
            VOCAB.decode([VOCAB.size])

    def test_half_a_character_decodes_to_replacement(self):
        self.assertEqual(VOCAB.decode([VOCAB.byte_base + 0xC3]), "\ufffd")


class TemplateTest(unittest.TestCase):
    def test_chatml_layout(self):
        text = render([{"role": "user", "content": "hi"}], [CALCULATOR_TOOL])
        self.assertEqual(text, "<|im_start|>system\n<tools>calculator(expression)</tools><|im_end|><|im_start|>user\nhi<|im_end|><|im_start|>assistant\n")

    def test_every_prompt_extends_the_previous_prompt_and_sampled_turn(self):
        for task in make_tasks(3, 20, "t"):
            messages = demonstration(task)["messages"]
            for i, m in enumerate(messages):
                if m["role"] != "assistant":
                    continue
                prompt = render_ids(messages[:i], [CALCULATOR_TOOL])
                # What the model samples for this turn: the body and <|im_end|>.
                call = m.get("tool_calls")
                body = (m["content"] or "") + "".join(tool_call_text(c["function"]["name"], c["function"]["arguments"]) for c in call or [])
                sampled = VOCAB.encode(body) + [IM_END]
                after = render_ids(messages[: i + 1], [CALCULATOR_TOOL], False)
                self.assertEqual(after, prompt + sampled)
                if i + 1 < len(messages):
                    self.assertEqual(render_ids(messages[: i + 2], [CALCULATOR_TOOL])[: len(after)], after)

    def test_bad_messages_name_where(self):
        with self.assertRaisesRegex(TemplateError, r"messages\[1\].role 'robot'"):
            render([{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}])
        with self.assertRaisesRegex(TemplateError, r"tools\[0\] has no function.name"):
            render([{"role": "user", "content": "x"}], [{"type": "function"}])
        with self.assertRaisesRegex(TemplateError, "non-empty"):
            render([])


class ToolCallParserTest(unittest.TestCase):
    def test_hermes_call_becomes_openai_tool_calls(self):
        content, calls = parse_tool_calls('Let me compute.<tool_call>{"name": "calculator", "arguments": {"expression": "2*3"}}</tool_call>')
        self.assertEqual(content, "Let me compute.")
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0]["type"], "function")
        self.assertEqual(calls[0]["function"], {"name": "calculator", "arguments": '{"expression": "2*3"}'})
        self.assertTrue(calls[0]["id"].startswith("chatcmpl-tool-"))

    def test_several_calls_and_an_unclosed_last_one(self):
        text = '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {"x": 1}}'
        content, calls = parse_tool_calls(text)
        self.assertIsNone(content)
        self.assertEqual([c["function"]["name"] for c in calls], ["a", "b"])
        self.assertEqual(json.loads(calls[1]["function"]["arguments"]), {"x": 1})

    def test_unparseable_calls_stay_content(self):
        for text in ['<tool_call>{"name": </tool_call>', "<tool_call>[1]</tool_call>", "plain <answer>4</answer>"]:
            content, calls = parse_tool_calls(text)
            self.assertEqual((content, calls), (text, []))

    def test_a_parsed_call_renders_back_verbatim(self):
        text = '<tool_call>{"name": "calculator", "arguments": {"expression": "12*34"}}</tool_call>'
        _, calls = parse_tool_calls(text)
        self.assertEqual(tool_call_text(calls[0]["function"]["name"], calls[0]["function"]["arguments"]), text)
        # A client that re-serializes the arguments compactly (JSON.stringify) renders the same.
        self.assertEqual(tool_call_text("calculator", '{"expression":"12*34"}'), text)
        self.assertEqual(tool_call_text("calculator", {"expression": "12*34"}), text)
        self.assertEqual(tool_call_text("f", "not json ("), '<tool_call>{"name": "f", "arguments": not json (}</tool_call>')


if __name__ == "__main__":
    unittest.main()
