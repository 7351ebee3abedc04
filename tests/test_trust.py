"""Teacher trust (ktm/trust.py): the rules against float64 numpy, the zero/full-trust limits bit for bit, the offline
gate, the audit, the corrupted teachers and the logged trust."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import metrics, padding, td3, teachers, transfer, trust
from ktm.envs import make_suite
from ktm.methods import ktm_drl
from tests import numpy_ref
from tests.test_run_ktm import main_in_process, teacher_dir  # noqa: F401  (module fixture: tiny teachers)
from tests.test_td3 import _plain, perturbed, tree_equal
from tests.test_transfer import (OBS_DIM, ACT_DIM, STUDENT, TEACHER, MASK, np_tree, offline_epoch, offline_task_update,
                                 task, three_tasks)

B = 64


@pytest.fixture(scope='module')
def nets():
  """Student (padded sizes) and a raw-size teacher k whose actor and critic are both used by the rules."""
  return (perturbed(td3.init(jax.random.key(0), STUDENT), jax.random.key(1)), td3.init(jax.random.key(2), TEACHER))


@pytest.fixture(scope='module')
def obs():
  return padding.pad(jax.random.normal(jax.random.key(3), (B, OBS_DIM)), STUDENT.obs_size)


def np_q1(critic, obs, action):
  return numpy_ref.critic(np_tree(critic), 0, np.asarray(obs, np.float64), np.asarray(action, np.float64))


def np_student_action(s, obs):
  return numpy_ref.actor(np_tree(s.actor_params), np.asarray(obs, np.float64)) * np.asarray(MASK)


def np_teacher_action(t, obs):
  """g^k(π_k(s)) at the student's action size, in float64."""
  raw = numpy_ref.actor(np_tree(t.actor_params), np.asarray(obs, np.float64)[:, :OBS_DIM])
  return np.pad(raw, [(0, 0), (0, STUDENT.act_size - ACT_DIM)])


def teacher_of(t, gate=1.0):
  return trust.Teacher(t.critic_params, t.actor_params, jnp.float32(gate), jnp.float32(1.0))


def weights(rule, s, t, obs, gate=1.0):
  action = td3.policy(s.actor_params, obs, STUDENT, MASK)
  return np.asarray(trust.sample_weights(rule, s.critic_params, teacher_of(t, gate), obs, action, STUDENT, TEACHER,
                                         MASK))


def np_action_grad(q_fn, action, eps=1e-6):
  """dQ/da per sample by central differences in float64: action [B, A] -> [B, A]."""
  grads = np.zeros_like(action)
  for j in range(action.shape[1]):
    step = np.zeros_like(action)
    step[:, j] = eps
    grads[:, j] = (q_fn(action + step) - q_fn(action - step)) / (2 * eps)
  return grads


def test_qfilter_passes_where_the_students_critic_prefers_the_teachers_action(nets, obs):
  s, t = nets
  q_teacher = np_q1(s.critic_params, obs, np_teacher_action(t, obs))
  q_own = np_q1(s.critic_params, obs, np_student_action(s, obs))
  clear = np.abs(q_teacher - q_own) > 1e-5
  expected = (q_teacher > q_own).astype(np.float32)
  w = weights('qfilter', s, t, obs)
  np.testing.assert_array_equal(w[clear], expected[clear])
  assert 0.1 < expected.mean() < 0.9           # the case tells passing from failing samples


def test_agreement_passes_where_both_critics_push_the_action_the_same_way(nets, obs):
  s, t = nets
  action = np_student_action(s, obs)
  own = np_action_grad(lambda a: np_q1(s.critic_params, obs, a), action)
  teacher = np_action_grad(lambda a: np_q1(t.critic_params, np.asarray(obs)[:, :OBS_DIM], a[:, :ACT_DIM]), action)
  dot = np.sum(own * teacher, axis=1)
  clear = np.abs(dot) > 1e-4
  w = weights('agreement', s, t, obs)
  np.testing.assert_array_equal(w[clear], (dot > 0)[clear].astype(np.float32))
  assert 0.1 < (dot > 0).mean() < 0.9


def test_both_is_the_product_and_the_gate_scales_every_rule(nets, obs):
  s, t = nets
  np.testing.assert_array_equal(weights('both', s, t, obs), weights('qfilter', s, t, obs) * weights('agreement', s, t,
                                                                                                    obs))
  np.testing.assert_array_equal(weights('none', s, t, obs), np.ones(B))
  for rule in trust.RULES:
    np.testing.assert_array_equal(weights(rule, s, t, obs, gate=0.0), np.zeros(B))


def loss_and_grads(fn, actor_params):
  (loss, _), grads = jax.value_and_grad(fn, has_aux=True)(actor_params)
  return loss, grads


def test_weighted_eq5_full_trust_is_eq5_and_zero_trust_is_td3_bit_for_bit(nets, obs):
  s, t = nets
  # the gate is an argument (traced), so XLA cannot fold the weights away
  trusted = jax.jit(lambda p, gate: loss_and_grads(lambda q: trust.trusted_actor_loss(
      q, s.critic_params, teacher_of(t, gate), obs, STUDENT, TEACHER, 0.7, 1.0, 'none', MASK), p))
  eq5 = jax.jit(lambda p: loss_and_grads(lambda q: transfer.online_actor_loss(
      q, s.critic_params, t.critic_params, obs, STUDENT, TEACHER, 0.7, 1.0, MASK), p))
  assert tree_equal(trusted(s.actor_params, 1.0), eq5(s.actor_params))
  td3_mt = jax.jit(lambda p: loss_and_grads(lambda q: transfer.online_actor_loss(
      q, s.critic_params, t.critic_params, obs, STUDENT, TEACHER, 0.0, 1.0, MASK), p))
  assert tree_equal(trusted(s.actor_params, 0.0), td3_mt(s.actor_params))
  assert not tree_equal(trusted(s.actor_params, 1.0)[1], td3_mt(s.actor_params)[1])


def test_weighted_eq5_value_against_numpy(nets, obs):
  s, t = nets
  w = np.asarray(jax.random.bernoulli(jax.random.key(4), 0.5, (B,)), np.float32)
  loss, m = trust.weighted_actor_loss(s.actor_params, s.critic_params, t.critic_params, jnp.asarray(w), obs, STUDENT,
                                      TEACHER, 0.7, 0.4, MASK)
  action = np_student_action(s, obs)
  teacher_q = np_q1(t.critic_params, np.asarray(obs)[:, :OBS_DIM], action[:, :ACT_DIM])
  expected = -(0.7 * np.mean(w * teacher_q) + 0.4 * np.mean(np_q1(s.critic_params, obs, action)))
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  assert float(m['teacher_trust']) == pytest.approx(w.mean())


# ---- whole epochs over K tasks ----

def stacked_teachers(critics, gates):
  k = len(gates)
  return trust.Teacher(critics, td3.init_many(jax.random.key(12), k, STUDENT).actor_params,
                       jnp.asarray(gates, jnp.float32), jnp.full((k,), 0.5))


def run_online(s, teacher, batches, masks, ktm_cfg, epochs=4):
  epoch = jax.jit(ktm_drl.online_epoch, static_argnames=('cfg', 'teacher_cfg', 'ktm_cfg'))
  for e in range(epochs):   # two delayed actor/target updates
    s, m = epoch(s, teacher, batches, masks, jnp.int32(e), cfg=STUDENT, teacher_cfg=STUDENT, ktm_cfg=ktm_cfg)
  return s, m


def test_trusted_online_epochs_with_all_or_no_trust_are_eq5_or_td3_mt(nets):
  """Zero trust: TD3-MT's epochs bit for bit. Full trust: the paper's up to the last bits, which depend on how XLA
  fuses the larger program (the actor gradient itself is Eq. 5's bit for bit: the test above)."""
  s, _ = nets
  batches, critics, masks = three_tasks(13)
  full, m = run_online(s, stacked_teachers(critics, [1, 1, 1]), batches, masks,
                       ktm_drl.KTMConfig(trust_audit=0.0))         # trusting, every weight 1
  paper, _ = run_online(s, critics, batches, masks, ktm_drl.KTMConfig())
  jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x), _plain(y), rtol=1e-6, atol=1e-9), full, paper)
  np.testing.assert_array_equal(m['teacher_trust'], np.ones(3))
  none, m = run_online(s, stacked_teachers(critics, [0, 0, 0]), batches, masks,
                       ktm_drl.KTMConfig(trust_rule='qfilter', trust_audit=0.9))
  td3_mt, _ = run_online(s, None, batches, masks, ktm_drl.KTMConfig(alpha=0.0))
  assert tree_equal(none, td3_mt)
  assert not tree_equal(none, full)
  np.testing.assert_array_equal(m['teacher_trust'], np.zeros(3))
  np.testing.assert_array_equal(m['teacher_audit'], np.full(3, 0.5))


def test_offline_epoch_skips_the_teachers_that_failed_their_audit(nets):
  s, _ = nets
  batches, critics, masks = three_tasks(14)
  out, m = offline_epoch(s, stacked_teachers(critics, [1, 0, 1]), batches, masks, jnp.int32(0), STUDENT,
                                 STUDENT, ktm_drl.KTMConfig(trust_audit=0.5))
  expected = s
  for i in (0, 2):
    expected, _ = offline_task_update(expected, task(critics, i),
                                              task(batches, i), masks[i], STUDENT, STUDENT)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x), _plain(y), rtol=1e-5, atol=1e-6), out, expected)
  assert int(out.critic_opt_state[0].count) == 2          # no optimizer step for the skipped teacher
  np.testing.assert_array_equal(m['teacher_trust'], [1, 0, 1])
  assert float(m['critic_loss'][1]) == 0 and float(m['critic_loss'][0]) > 0


# ---- the audit and the corrupted teachers ----

def test_audit_against_numpy_and_a_negated_critic_scores_the_complement():
  cfg = td3.TD3Config(obs_size=4, act_size=2, hidden_sizes=(8, 8))
  t = td3.init(jax.random.key(5), cfg)
  obs = jax.random.normal(jax.random.key(6), (500, 4))
  key = jax.random.key(7)
  score = float(trust.audit(t.actor_params, t.critic_params, obs, key, cfg, act_dim=1))
  mask = np.array([1.0, 0.0])
  own = numpy_ref.actor(np_tree(t.actor_params), np.asarray(obs, np.float64)) * mask
  rand = np.asarray(jax.random.uniform(key, (500, 2), minval=-1.0, maxval=1.0), np.float64) * mask
  expected = np.mean(np_q1(t.critic_params, obs, own) > np_q1(t.critic_params, obs, rand))
  assert score == pytest.approx(expected, abs=2 / 500)    # at most a tie or two decided by float32 rounding
  negated = float(trust.audit(t.actor_params, trust.negate_critic(t.critic_params), obs, key, cfg, act_dim=1))
  assert score + negated == pytest.approx(1.0, abs=2 / 500)


def test_audit_rows_spread_over_the_filled_rows():
  np.testing.assert_array_equal(trust.audit_rows(jnp.int32(10), 4), [0, 2, 5, 7])
  np.testing.assert_array_equal(trust.audit_rows(jnp.int32(3), 4), [0, 0, 1, 2])
  big = 1_000_003                                # j * size overflows int32 here
  np.testing.assert_array_equal(trust.audit_rows(jnp.int32(big)), np.arange(trust.AUDIT_SAMPLES, dtype=np.int64)
                                * big // trust.AUDIT_SAMPLES)


def test_corrupt_replaces_or_negates_only_the_named_teachers():
  cfg = td3.TD3Config(obs_size=4, act_size=2, hidden_sizes=(8, 8))
  states = td3.init_many(jax.random.key(8), 3, cfg)
  bad = trust.corrupt(states, ('', 'random', 'adversarial'), cfg, seed=0)
  pick = lambda tree, k: jax.tree.map(lambda x: x[k], tree)
  assert tree_equal(pick(bad, 0), pick(states, 0))
  assert tree_equal(pick(bad, 1), td3.init(jax.random.fold_in(jax.random.key(0), 1), cfg))
  obs, action = jax.random.normal(jax.random.key(9), (6, 4)), jax.random.uniform(jax.random.key(10), (6, 2))
  for field in ('critic_params', 'target_critic_params'):
    np.testing.assert_array_equal(td3.twin_q(getattr(pick(bad, 2), field), obs, action, cfg),
                                  -td3.twin_q(getattr(pick(states, 2), field), obs, action, cfg))
  assert tree_equal(pick(bad, 2).actor_params, pick(states, 2).actor_params)


def test_corruption_specs_by_name_or_index_and_clear_errors():
  names = ('A', 'B', 'C')
  assert trust.parse_corruptions('', names) == ('', '', '')
  assert trust.parse_corruptions('B=random, 2=adversarial', names) == ('', 'random', 'adversarial')
  for spec, message in [('B=evil', 'MODE one of'), ('D=random', "no task 'D'"), ('3=random', "no task '3'"),
                        ('B=random,1=adversarial', 'named twice'), ('B', 'MODE one of')]:
    with pytest.raises(ValueError, match=message):
      trust.parse_corruptions(spec, names)


def test_trust_needs_the_sequential_hierarchical_epoch():
  with pytest.raises(ValueError, match='sequential'):
    ktm_drl.KTMConfig(trust_rule='qfilter', combine='joint')
  with pytest.raises(ValueError, match='trust_rule'):
    ktm_drl.KTMConfig(trust_rule='always')
  with pytest.raises(ValueError, match='does not use'):
    ktm_drl.KTMConfig(trust_audit=0.75, offline_epochs=0, alpha=0.0)


def test_logged_trust_is_the_mean_over_the_epochs_that_updated_the_actor(tmp_path):
  writer = metrics.MetricsWriter(str(tmp_path), tensorboard=False)
  bar = metrics.Progress(total=1, desc='t', disable=True)
  # a chunk of 10 epochs, 5 of them actor updates: trust summed 4.5 over them on task 0, no actor update on task 1
  metrics.log_evaluation(writer, bar, 10, ['a', 'b'], np.zeros((2, 1)),
                         {'teacher_trust': np.array([0.45, 0.0]), 'actor_updates': np.array([0.5, 0.0])})
  writer.close()
  row = json.loads((tmp_path / 'metrics.jsonl').read_text())
  assert row['teacher_trust/a'] == pytest.approx(0.9)
  assert row['teacher_trust/b'] is None


# ---- the named configuration and whole runs ----

def test_every_ktm_preset_has_a_trusted_twin_and_the_paper_presets_stay_the_papers():
  from ktm import presets  # pylint: disable=import-outside-toplevel
  for name, preset in presets.KTM.items():
    if name.endswith('_plus'):
      base = presets.KTM[name[:-len('_plus')]]
      assert preset == dict(base, ktm=dict(base['ktm'], **presets.TRUST))
      assert ktm_drl.KTMConfig(**preset['ktm']).trusting
    else:
      assert f'{name}_plus' in presets.KTM
      assert not ktm_drl.KTMConfig(**preset['ktm']).trusting


def read_rows(workdir):
  return [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl')) if l.strip()]


def test_a_run_with_an_adversarial_teacher_records_it_and_audits_its_critic_as_the_complement(teacher_dir, tmp_path):
  """tiny_plus on tiny teachers with teacher 1's critic negated, its offline stage only (the online trust:
  test_trusted_online_epochs_*): config.json records the corruption, the logged audit of teacher 1 is 1 - its clean
  audit (computed here from the set on disk), every other teacher's is its clean audit, and the logged trust is the
  gate audit >= 0.75 in the offline stage."""
  workdir = str(tmp_path / 'run')
  main_in_process([f'--workdir={workdir}', f'--teacher_dir={teacher_dir}', '--preset=tiny_plus',
                   '--corrupt_teachers=InvertedPendulumLongPole=adversarial', '--online_epochs=0',
                   '--progress_bar=false', '--tensorboard=false'])
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['ktm']['corrupt_teachers'] == 'InvertedPendulumLongPole=adversarial'
  suite = make_suite('pendulum_group')
  t = teachers.load(teacher_dir, suite)
  clean = np.asarray(trust.audit_teachers(t.states.actor_params, t.states.critic_params, t.buffer.data.obs,
                                          t.buffer.size, t.cfg, suite.act_dims))
  offline_row = next(r for r in read_rows(workdir) if r['step'] == 100)      # tiny: 100 offline epochs
  logged = np.array([offline_row[f'teacher_audit/{n}'] for n in suite.task_names])
  expected = clean.copy()
  expected[1] = 1.0 - clean[1]
  np.testing.assert_allclose(logged, expected, atol=2 / trust.AUDIT_SAMPLES)
  np.testing.assert_array_equal([offline_row[f'teacher_trust/{n}'] for n in suite.task_names], logged >= 0.75)


@pytest.mark.slow
def test_the_audit_drops_a_random_and_an_adversarial_teacher_and_keeps_the_experts(tmp_path):
  """Expert pendulum teachers (quick preset; 8 min at the tests' -O0 on a 2-core Zen 3), two of them corrupted: the
  audit keeps the experts (>= 0.8) and drops the random (a coin: 0.35-0.65) and the adversarial teacher (<= 0.3);
  the trusted student is then at >= 900 on the two clean tasks when the offline stage ends, and its online trust in
  the dropped teachers is 0."""
  workdir = str(tmp_path / 'run')
  main_in_process([f'--workdir={workdir}', f'--teacher_dir={tmp_path / "teachers"}', '--preset=quick_plus',
                   '--corrupt_teachers=InvertedPendulumLongPole=random,InvertedPendulumHeavyPole=adversarial',
                   '--offline_epochs=1000', '--online_epochs=1000', '--eval_every=1000', '--progress_bar=false',
                   '--tensorboard=false'])
  names = make_suite('pendulum_group').task_names
  rows = {r['step']: r for r in read_rows(workdir) if 'eval_return/' + names[0] in r}
  audit = [rows[1000][f'teacher_audit/{n}'] for n in names]
  assert audit[0] >= 0.8 and audit[2] >= 0.8, audit
  assert 0.35 <= audit[1] <= 0.65 and audit[3] <= 0.3, audit
  assert rows[1000][f'eval_return/{names[0]}'] >= 900 and rows[1000][f'eval_return/{names[2]}'] >= 900
  assert rows[2000][f'teacher_trust/{names[1]}'] == 0 and rows[2000][f'teacher_trust/{names[3]}'] == 0
