"""A user-defined suite: four Hopper morphologies (Benchmark A's recipe: scale named geoms' sizes, keep the mass).

  python experiments/train_teachers.py --benchmark=examples.hopper_group:SUITE --preset=quick --workdir=/tmp/hop_t
  python experiments/run_ktm.py --benchmark=examples.hopper_group:SUITE --preset=quick --workdir=/tmp/hop \
      --teacher_dir=/tmp/hop_t

Hopper's geoms: torso_geom, thigh_geom, leg_geom, foot_geom (capsules: `size` = radius, half-length).
"""

from ktm.envs import custom

HOPPER_GROUP = custom.morphology_group('Hopper', [
    custom.variant('HopperBigTorso', size={'torso_geom': 1.25}),
    custom.variant('HopperSmallTorso', size={'torso_geom': 0.75}),
    custom.variant('HopperBigFoot', size={'foot_geom': 1.25}),
    custom.variant('HopperSmallFoot', size={'foot_geom': 0.75}),
], total_mass='keep')   # every variant renormalised to Hopper's own total mass; None lets the sizes change it

SUITE = custom.suite('hopper_group', [HOPPER_GROUP])
