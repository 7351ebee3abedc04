"""Run directories for any method: validate everything, train on the shared loop, write the results.

A run directory (WORKDIR) holds
  config.json      {'method', 'benchmark', 'seed', 'loop': LoopConfig, <method field>: <its config>, 'teacher_dir',
                   'sweep', and 'init_from' for a run started from another's first stage} written only once training
                   really starts; a resumed run must match it (differing fields named)
  checkpoints/     the whole RunState of all members every `checkpoint_every` epochs (orbax, checksummed, two kept,
                   and the one at each stage boundary)
  metrics.csv / metrics.jsonl / tensorboard/   one row per evaluation, per member (member m > 0 in member_<m>/)
  results.json     {'benchmark', 'method', 'members': [{'member', 'seed', 'values', 'tasks': [{'name',
                   'student_return', 'teacher_return', 'ratio'}]}], 'summary': per setting and task, mean and std over
                   seeds, ...}; a one-member run also keeps 'tasks' (its rows) at the top
Teacher runs (method 'ideal') also write WORKDIR/teachers/<Task>/ (see ktm.teachers), complete as a set; member m > 0
of a teacher sweep writes WORKDIR/member_<m>/teachers/.

The modules, each importing only those above it:
  sweep_members.py     each member's devices, writing process, directory and teacher set
  run_config.py        the method from config values, config.json, resume / --init_from checks
  checks.py            before any work: WORKDIR writable, memory and disk, WORKDIR's writer lock
  reporting.py         metrics while training (RunReporter); results.json and the printed tables
  training.py          `train`: one run of any method on the shared loop
  teacher_training.py  `train_teachers` (experiments/train_teachers.py), `ensure_teachers` for a student run
  student_training.py  `run`: a student method end to end (experiments/run_ktm.py, run_baseline.py)
  restore.py           `restore` / `restore_members` / `evaluate_checkpoint` (experiments/evaluate.py)
"""
