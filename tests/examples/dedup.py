EXAMPLES = {"dedup": lambda tmp_path: {"threshold": 0.7, "image_max_bits": 3}}
