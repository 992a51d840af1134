"""What judges: proxy evaluators (what the loop optimises), the hidden truth evaluator, and the
safety probes the control gate runs."""
