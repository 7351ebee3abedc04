"""Named settings for the experiment scripts: the paper's, and ones sized for a 2-core CPU.

Each preset gives the default suite and keyword overrides of the config dataclasses (TD3Config without its
sizes, TrainConfig for teachers, KTMConfig for the student); flags override them in turn.
"""

TEACHERS = {
    # The paper's teachers (TD3 defaults): 1M steps, 400-400, 25k random steps, evaluation every 5k steps.
    'paper': dict(benchmark='halfcheetah_group', td3={}, train={}),
    # pendulum_group on a 2-core CPU in about 2 minutes, every teacher at 1000 (see WORKSPACE.md).
    'quick': dict(benchmark='pendulum_group',
                  td3=dict(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3),
                  train=dict(steps=15_000, start_steps=1_000, chunk_steps=10, eval_every=2_500,
                             replay_capacity=15_000, updates_per_step=3)),
}

KTM = {
    # The paper's KTM-DRL: 500K offline + 500K online epochs, 400-400 student, its teachers from TEACHERS['paper'].
    'paper': dict(benchmark='halfcheetah_group', teachers='paper', td3={}, ktm={}),
    # pendulum_group on a 2-core CPU, teachers included (see WORKSPACE.md for time and ratios).
    'quick': dict(benchmark='pendulum_group', teachers='quick',
                  td3=dict(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3),
                  ktm=dict(offline_epochs=5_000, online_epochs=5_000, online_capacity=10_000, eval_every=1_000,
                           eval_episodes=10, checkpoint_every=2_500, offline_chunk=500, chunk_steps=10)),
}
