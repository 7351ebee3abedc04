"""The reproduction report: run directories -> the paper's Tables 1-3 and Figures 2-3 with honest statistics.

runs.py reads run directories, stats.py holds mean ± std / IQM / stratified bootstrap, tables.py the per-benchmark
summaries and markdown, figures.py the PNGs, build.py `write_report`; paper_results.json the paper's tables.
"""
