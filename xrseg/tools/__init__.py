"""Evaluation, benchmarks, scene generation and test data: tools around the runtime, never imported by it."""
