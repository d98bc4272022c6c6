"""The DataLoader's engine (private). Filled in below."""
