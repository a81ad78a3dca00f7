"""Full-ranking evaluation: metrics, top-k scoring, segments, significance."""
