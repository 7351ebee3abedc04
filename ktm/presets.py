"""Named settings for the experiment scripts: the paper's, and ones sized for a 2-core CPU.

`METHODS[method][preset]` gives the default suite, the teacher preset the run uses (for KTM-DRL's transfer, A2C-MT's
distillation and every method's performance ratio), `loop` (LoopConfig) overrides, and per config field of the
method class (e.g. `cfg` = TD3Config without its sizes, `ktm` = KTMConfig, `schedule` = OffPolicySchedule) keyword
overrides; flags override them in turn.
"""

_QUICK_NETS = dict(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3)
_QUICK_LOOP = dict(eval_every=1_000, eval_episodes=10, checkpoint_every=2_500)

TEACHERS = {
    # The paper's teachers (TD3 defaults): 1M steps, 400-400, 25k random steps, evaluation every 5k steps.
    'paper': dict(benchmark='halfcheetah_group', cfg={}, schedule=dict(start_steps=25_000), loop={}),
    # pendulum_group on a 2-core CPU in about 2 minutes, every teacher at 1000 (see WORKSPACE.md).
    'quick': dict(benchmark='pendulum_group', cfg=_QUICK_NETS,
                  schedule=dict(steps=15_000, start_steps=1_000, chunk_steps=10, replay_capacity=15_000,
                                updates_per_step=3),
                  loop=dict(eval_every=2_500, checkpoint_every=5_000)),
}

# 'cpu': the CPU-scale tables (issue 12) on Benchmark A, sized so that a whole Table 1 (teachers + KTM-DRL + five
# baselines, 2 seeds each as sweeps) fits in about 6 hours of a 2-core CPU, one run per core (WORKSPACE.md). The
# paper's budget at 1/10 scale: teachers 150k steps (paper 1M); students 100k epochs (paper 1M): KTM-DRL 25k
# offline + 75k online (NOT the paper's 50/50 split, 500k + 500k; on Benchmark A w/o Offline, 0 + 100k, beats this
# split on every seed pair, so no split is claimed optimal: results/benchmark_a_cpu/README.md), the baselines 100k
# from scratch; 256-256 networks (paper 400-400); evaluation every 5k.
_CPU_LOOP = dict(eval_every=5_000, checkpoint_every=5_000)
TEACHERS['cpu'] = dict(benchmark='halfcheetah_group', cfg=dict(hidden_sizes=(256, 256)),
                       schedule=dict(steps=150_000, start_steps=10_000, chunk_steps=10, replay_capacity=150_000),
                       loop=_CPU_LOOP)
_CPU_NETS = dict(hidden_sizes=(256, 256), compute_dtype='bfloat16')
_CPU_STUDENT_EPOCHS = 100_000

# 'tiny': seconds-long runs on pendulum_group for tests (kill/resume torture); not for results.
_TINY_NETS = dict(hidden_sizes=(16, 16), batch_size=16)
TEACHERS['tiny'] = dict(benchmark='pendulum_group', cfg=_TINY_NETS,
                        schedule=dict(steps=400, start_steps=100, chunk_steps=20, replay_capacity=400),
                        loop=dict(eval_every=200, eval_episodes=2, checkpoint_every=100))

# 'fast' (issue 27): E = 4 envs per task on pendulum_group, with quick's networks, batch and updates per epoch (so 1/4
# of its updates per env step); `--num_envs`, `--updates_per_step` (fractions too) and `--batch_size` change it.
# Measured by `python -m benchmarks.time_to_score` on this 2-core CPU (benchmarks/results/time_to_score_*.md), to a
# return of 900 on every task: teachers 0.80x quick's training seconds (0.79x the updates), TD3-MT 1.29x; fewer
# updates per env step or a batch of 512 did not learn in 40,000 env steps (learning here is bound by gradient
# updates, FLOP-bound on a CPU). The preset is the many-envs regime's starting point for accelerators. Every count
# is in epochs (vector steps): start_steps x E random transitions per task, steps x E env steps per task, replay
# capacity in transitions per task.
_FAST_ENVS = 4
_FAST_LOOP = dict(num_envs=_FAST_ENVS, eval_every=250, eval_episodes=10, checkpoint_every=1_000)
TEACHERS['fast'] = dict(benchmark='pendulum_group', cfg=_QUICK_NETS,
                        schedule=dict(steps=15_000, start_steps=250, chunk_steps=10, replay_capacity=60_000,
                                      updates_per_step=3),
                        loop=_FAST_LOOP)

# 'mt10_cpu' (issue 28): Meta-World MT10 (metaworld 3.1.1, reward v3, one fixed goal per task) with the task id in
# every observation, sized for a 2-core CPU across sittings: teachers 100k steps per task, students 100k epochs,
# 256-256 networks, evaluation every 5k epochs (5 episodes of 500 steps per task). Sized from one measurement only
# (2026-12-03, Zen 4): 3k teacher epochs of the ten 256-256 learners with one update per epoch took 136 s including
# compile and two evaluations (22 epochs/s overall), so a teacher set takes ~1.3 h if that rate holds; the students
# were not timed. Not yet run to the end: no result claims anything about it.
_MT10 = 'mt10+task_id'
_MT10_LOOP = dict(eval_every=5_000, eval_episodes=5, checkpoint_every=5_000)
_MT10_NETS = dict(hidden_sizes=(256, 256))
_MT10_EPOCHS = 100_000     # teacher steps per task, and every student's epochs
TEACHERS['mt10_cpu'] = dict(benchmark=_MT10, cfg=_MT10_NETS,
                            schedule=dict(steps=_MT10_EPOCHS, start_steps=5_000, chunk_steps=10,
                                          replay_capacity=_MT10_EPOCHS),
                            loop=_MT10_LOOP)

KTM = {
    # The paper's KTM-DRL: 500K offline + 500K online epochs, 400-400 student, its teachers from TEACHERS['paper'].
    # Sec. 3.4: "the exploration noise is N(0, 0.1), the clip threshold c = 0.5" for acting AND Eq. 3's target
    # smoothing (read as std 0.1, TD3's notation), so the student's target_noise is 0.1, not TD3's 0.2. No warm-up
    # before online updates: the paper has none, and neither has the authors' code in effect (train-ktm.py updates
    # once `st >= observation` = 10k, but its online `st` starts at the 500k offline steps, and its online buffer is
    # emptied first, so updates start at the first online step). Adam moments carry over from the offline stage (the
    # paper is silent; the authors' code steps separate online optimizers, i.e. fresh moments: --online_adam=fresh).
    'paper': dict(benchmark='halfcheetah_group', teachers='paper', cfg=dict(target_noise=0.1), ktm={}, loop={}),
    # pendulum_group on a 2-core CPU, teachers included (see WORKSPACE.md for time and ratios).
    'quick': dict(benchmark='pendulum_group', teachers='quick', cfg=_QUICK_NETS,
                  ktm=dict(offline_epochs=5_000, online_epochs=5_000, online_capacity=10_000, offline_chunk=500,
                           chunk_steps=10),
                  loop=_QUICK_LOOP),
    'cpu': dict(benchmark='halfcheetah_group', teachers='cpu', cfg=dict(_CPU_NETS, target_noise=0.1),
                ktm=dict(offline_epochs=25_000, online_epochs=75_000, online_capacity=75_000, offline_chunk=500,
                         chunk_steps=10),
                loop=_CPU_LOOP),
    'fast': dict(benchmark='pendulum_group', teachers='fast', cfg=_QUICK_NETS,
                 ktm=dict(offline_epochs=5_000, online_epochs=2_500, online_capacity=10_000, offline_chunk=500,
                          chunk_steps=10),
                 loop=_FAST_LOOP),
    'tiny': dict(benchmark='pendulum_group', teachers='tiny', cfg=_TINY_NETS,
                 ktm=dict(offline_epochs=100, online_epochs=100, online_capacity=100, offline_chunk=25, chunk_steps=10),
                 loop=dict(eval_every=50, eval_episodes=2, checkpoint_every=50)),
    'mt10_cpu': dict(benchmark=_MT10, teachers='mt10_cpu', cfg=dict(_MT10_NETS, target_noise=0.1),
                     ktm=dict(offline_epochs=25_000, online_epochs=75_000, online_capacity=75_000, offline_chunk=500,
                              chunk_steps=10),
                     loop=_MT10_LOOP),
}

# The trusted student (issue 24, ktm/trust.py): each KTM preset NAME has a NAME_plus twin with teacher trust on.
# A teacher whose critic ranks its own actor's action above a uniform-random one on fewer than 75% of its replay
# rows is not used at all (offline or online): on pendulum_group expert teachers score 0.86-0.89, a freshly
# initialized one 0.51 and a negated critic 0.14. Online, Eq. 5's teacher term counts only on the samples where the
# teacher's and the student's critics push the action the same way ('agreement': on pendulum_group with two
# corrupted teachers it ended at 1000 on every task and seed, the Q-filter at 884-892; results/trust_pendulum/).
TRUST = dict(trust_rule='agreement', trust_audit=0.75)
KTM.update({f'{name}_plus': dict(preset, ktm=dict(preset['ktm'], **TRUST)) for name, preset in list(KTM.items())})

TD3_MT = {
    # TD3-MT: KTM-DRL's online stage alone with alpha = 0, 1M epochs (the paper's budget for the baselines).
    'paper': dict(benchmark='halfcheetah_group', teachers='paper', cfg={},
                  ktm=dict(offline_epochs=0, online_epochs=1_000_000, alpha=0.0, online_start_steps=10_000),
                  loop={}),
    'quick': dict(benchmark='pendulum_group', teachers='quick', cfg=_QUICK_NETS,
                  ktm=dict(offline_epochs=0, online_epochs=10_000, alpha=0.0, online_capacity=10_000,
                           chunk_steps=10, online_start_steps=1_000),
                  loop=_QUICK_LOOP),
    'fast': dict(benchmark='pendulum_group', teachers='fast', cfg=_QUICK_NETS,
                 ktm=dict(offline_epochs=0, online_epochs=10_000, alpha=0.0, online_capacity=40_000,
                          chunk_steps=10, online_start_steps=250),
                 loop=_FAST_LOOP),
    'cpu': dict(benchmark='halfcheetah_group', teachers='cpu', cfg=_CPU_NETS,
                ktm=dict(offline_epochs=0, online_epochs=_CPU_STUDENT_EPOCHS, alpha=0.0,
                         online_capacity=_CPU_STUDENT_EPOCHS, chunk_steps=10, online_start_steps=10_000),
                loop=_CPU_LOOP),
    'mt10_cpu': dict(benchmark=_MT10, teachers='mt10_cpu', cfg=_MT10_NETS,
                     ktm=dict(offline_epochs=0, online_epochs=_MT10_EPOCHS, alpha=0.0, online_capacity=_MT10_EPOCHS,
                              chunk_steps=10, online_start_steps=5_000),
                     loop=_MT10_LOOP),
}


def _from_scratch(cfg_quick: dict) -> dict:
  """Presets of an off-policy baseline trained from scratch on one OffPolicySchedule: the paper's 1M epochs (10k
  without updates first, as the authors' loop with no offline stage; their actions are the student's noisy ones,
  here uniform-random as in TD3), 10k epochs on pendulum_group for a 2-core CPU, and
  the CPU-scale Benchmark A budget."""
  return {'paper': dict(benchmark='halfcheetah_group', teachers='paper', cfg={}, schedule=dict(start_steps=10_000),
                        loop={}),
          'quick': dict(benchmark='pendulum_group', teachers='quick', cfg=cfg_quick,
                        schedule=dict(steps=10_000, start_steps=1_000, chunk_steps=10, replay_capacity=10_000),
                        loop=_QUICK_LOOP),
          'fast': dict(benchmark='pendulum_group', teachers='fast', cfg=cfg_quick,
                       schedule=dict(steps=10_000, start_steps=250, chunk_steps=10, replay_capacity=40_000),
                       loop=_FAST_LOOP),
          'cpu': dict(benchmark='halfcheetah_group', teachers='cpu', cfg=_CPU_NETS,
                      schedule=dict(steps=_CPU_STUDENT_EPOCHS, start_steps=10_000, chunk_steps=10,
                                    replay_capacity=_CPU_STUDENT_EPOCHS),
                      loop=_CPU_LOOP)}


SAC_MT = _from_scratch(_QUICK_NETS)
# MTSAC as in metaworld-algorithms (one SAC, task id in the observation, a temperature per task) at MT10 CPU scale.
SAC_MT['mt10_cpu'] = dict(benchmark=_MT10, teachers='mt10_cpu', cfg=_MT10_NETS,
                          schedule=dict(steps=_MT10_EPOCHS, start_steps=5_000, chunk_steps=10,
                                        replay_capacity=_MT10_EPOCHS),
                          loop=_MT10_LOOP)
SHAREDNET = _from_scratch(_QUICK_NETS)
# SharedNet takes ONE optimizer step per update (summed task losses); on pendulum_group 4 updates per epoch give it
# the optimizer steps per epoch of the sequential methods (K = 4): at 1 it was at 81-153 after 20k epochs.
# At CPU scale it takes one step per epoch, as G-Surgery and as D'Eramo et al. (one step per iteration on every
# task's minibatch): each epoch then costs what TD3-MT's costs. At 8 (TD3-MT's optimizer steps per epoch on
# Benchmark A) every epoch costs 8x the compute: 3,280 epochs took 28.5 min on 2/3 of a core, ~10 h of a whole core
# for the 100k epochs, outside Table 1's 6-hour budget.
SHAREDNET['quick']['schedule'] = dict(SHAREDNET['quick']['schedule'], updates_per_step=4)
SHAREDNET['fast']['schedule'] = dict(SHAREDNET['fast']['schedule'], updates_per_step=4)
GSURGERY = _from_scratch(_QUICK_NETS)
A2C_MT = {
    # 200k epochs x n_steps 5 = 1M env steps per env, 8 envs per task; evaluations every 1000 epochs (5k steps).
    'paper': dict(benchmark='halfcheetah_group', teachers='paper', cfg={}, schedule={},
                  loop=dict(num_envs=8, eval_every=1_000, checkpoint_every=10_000)),
    'quick': dict(benchmark='pendulum_group', teachers='quick', cfg=dict(hidden_sizes=(64, 64), learning_rate=1e-3),
                  schedule=dict(epochs=2_000, chunk=100), loop=dict(num_envs=8, eval_every=200, eval_episodes=10,
                                                                    checkpoint_every=500)),
    # 20k epochs x n_steps 5 = 100k env steps per env (the other students' budget), 8 envs per task.
    'cpu': dict(benchmark='halfcheetah_group', teachers='cpu', cfg=dict(hidden_sizes=(256, 256)),
                schedule=dict(epochs=20_000, chunk=100), loop=dict(num_envs=8, eval_every=1_000,
                                                                    checkpoint_every=2_000)),
}

METHODS = {'ideal': TEACHERS, 'ktm': KTM, 'td3_mt': TD3_MT, 'sac_mt': SAC_MT, 'sharednet': SHAREDNET,
           'gsurgery': GSURGERY, 'a2c_mt': A2C_MT}
