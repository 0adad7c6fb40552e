"""Stage 5's teachers: rule checkers, LLM and HTTP judges, the constitution, the reward model."""
