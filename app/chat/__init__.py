"""Chat: templates, conversations, generation runs."""
