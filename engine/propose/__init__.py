"""Where candidates come from: prompts, the LLM ensemble and its memory, the offline proposer."""
