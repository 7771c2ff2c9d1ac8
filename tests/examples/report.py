EXAMPLES = {"report": lambda tmp_path: {"per_label": 4}}
