"""The reward: helpful-only reward models (R_rm), the linear model over rule features (w . x), and the scoring
pipeline that joins them, R = R_rm + w[response_type] . features (scoring.py)."""
