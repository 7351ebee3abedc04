"""When a stage stops paying (issue 24): the rule that ends a stage with `Stage.patience` early.

KTM-DRL's offline stage distills the teachers into the student without a single env step. With imperfect teachers
it reaches them early (Benchmark A at the cpu preset: 0.97 of the teachers after 25k epochs, most of it long before)
and the rest of its fixed share of the budget buys nothing. The loop evaluates the student every `eval_every`
epochs; after each evaluation of a stage with patience P, the stage ends when its last P evaluations improved on
nothing:

  R[n, m, k]   mean evaluation return of evaluation n (of this stage), sweep member m, task k
  best_before  b[m, k] = max_{n < N - P} R[n, m, k]          (N evaluations so far, N > P)
  best_since   l[m, k] = max_{n >= N - P} R[n, m, k]
  stalled      l[m, k] <= b[m, k] + MIN_GAIN * |b[m, k]|    for every live member m and every task k

so one task of one member still rising by more than MIN_GAIN (1%) of its best keeps the stage going, and a stage
whose evaluations keep rising runs its whole length (the paper's schedule). Members that diverged (NaN rows) are
left out. The epochs a stage leaves unspent go to the next stage (`loop.effective_stages`): the run's budget in
epochs stays the one configured.
"""

import numpy as np

MIN_GAIN = 0.01   # an improvement must exceed 1% of the best return so far (evaluation noise is not progress)


def stalled(returns: np.ndarray, patience: int, min_gain: float = MIN_GAIN) -> bool:
  """returns [N, S, K] (or [N, S, K, E]: averaged over the episodes E) of one stage's N evaluations so far;
  whether the stage has stalled by the rule above. False while N <= patience, or when no member is live."""
  returns = np.asarray(returns, np.float64)
  if returns.ndim == 4:
    returns = returns.mean(axis=-1)
  if returns.shape[0] <= patience:
    return False
  live = ~np.isnan(returns).any(axis=(0, 2))
  if not live.any():
    return False
  before = returns[:-patience, live].max(axis=0)
  since = returns[-patience:, live].max(axis=0)
  return bool(np.all(since <= before + min_gain * np.abs(before)))
