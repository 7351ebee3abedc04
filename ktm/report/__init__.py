"""The reproduction report: run directories -> the paper's Tables 1-3 and Figures 2-3 with honest statistics.

runs.py reads run directories; scores.py the per-run scores (stitched max, best checkpoint, final) and the
normalizations; stats.py mean ± std / IQM / stratified bootstrap / P(X > Y); tables.py the per-benchmark summaries
and markdown; compare.py the pairwise orderings the seeds resolve; budget.py what each run spent and its env-step
axis; random_policy.py the cached uniform-random returns; figures.py the PNGs; headline.py the README's blocks;
build.py `write_report`; paper_results.json the paper's tables.
"""
