"""tokentango."""
