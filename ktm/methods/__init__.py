"""The multi-task methods, one module each, all on the shared loop (`ktm.loop`); `METHODS` maps names to classes.

  ideal      K independent TD3 learners, one per task (the teachers; the paper's "Ideal")
  ktm        KTM-DRL (offline transfer from the teachers, then online learning with Eq. 5)
  td3_mt     TD3-MT: KTM-DRL with no offline stage and alpha = 0
  sac_mt     SAC-MT: SAC with the hierarchical replay and g^k masks
  sharednet  SharedNet: task-specific input layers and heads around shared hidden layers, on TD3
  gsurgery   G-Surgery: PCGrad-projected per-task gradients, on TD3
  a2c_mt     A2C-MT: on-policy A2C with distillation from the teachers
"""

from ktm.methods.a2c import A2CMethod
from ktm.methods.base import Method, OffPolicySchedule, Stage, TaskInfo
from ktm.methods.gsurgery import GSurgeryMethod
from ktm.methods.ideal import IdealMethod
from ktm.methods.ktm_drl import KTMConfig, KTMMethod, TD3MTMethod
from ktm.methods.sac import SACMethod
from ktm.methods.sharednet import SharedNetMethod

METHODS = {cls.name: cls for cls in (IdealMethod, KTMMethod, TD3MTMethod, SACMethod, SharedNetMethod, GSurgeryMethod,
                                     A2CMethod)}

__all__ = ['METHODS', 'Method', 'OffPolicySchedule', 'Stage', 'TaskInfo', 'IdealMethod', 'KTMConfig', 'KTMMethod',
           'TD3MTMethod', 'SACMethod', 'SharedNetMethod', 'GSurgeryMethod', 'A2CMethod']
