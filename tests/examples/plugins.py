EXAMPLES = {
    "slow_text": lambda tmp_path: {"n_per_label": 2},
    "min_words": lambda tmp_path: {"min_words": 3},
}
