"""Tests of rollout_trainer (unittest); run.py lists and runs them for vitest's bridge."""
