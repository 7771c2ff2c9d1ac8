"""Quality filters: score every synthetic sample, store the scores, reject with a named reason.

One module per filter family, each registered by name and configured in YAML:

- ``text_quality`` (text_quality.py): length, Gopher-style repetition, character ratios,
  refusal / boilerplate patterns, copies of the prompt or a few-shot example;
- ``pii`` (pii.py): e-mails, phone numbers, Luhn-valid card numbers, IP addresses; reject or redact;
- ``text_label_consistency`` / ``image_label_consistency`` (label_consistency.py): agreement
  with the intended label, judged against the real train split;
- ``perplexity`` (perplexity.py): under a reference causal LM;
- ``image_quality`` (image_quality.py): size, aspect, blur, exposure, contrast;
- ``clip_score`` (clip_score.py): CLIP text-image alignment of prompted generations;
- ``model_scorer`` (model_scorer.py): any image/text classifier by model id (aesthetic, NSFW, ...).

Every filter writes its scores as ``<step name>.<score>`` for kept and rejected samples alike and
rejects as ``filter:<step name>.<reason>``; ``decide`` reads only the stored scores and the
parameters, so ``synth refilter RUN_DIR --set steps.<name>.<threshold>=...`` re-sweeps thresholds
without rescoring. ``thresholds()`` gives ``{score key: [(op, value)]}`` for the report. The pure
score functions live in ``_scores.py``; the shared base in ``_base.py``.
"""
