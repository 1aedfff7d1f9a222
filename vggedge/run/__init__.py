"""``optimize``, stage by stage: prepare (load, check, measure the baseline), run each recipe (steps, convert,
verify, measure, report), and the automatic search's run."""
