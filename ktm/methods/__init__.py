"""The multi-task methods, one module each, all on the shared loop (`ktm.loop`); `METHODS` maps names to classes."""

from ktm.methods.base import Method, OffPolicySchedule, Stage, TaskInfo
from ktm.methods.ideal import IdealMethod
from ktm.methods.ktm_drl import KTMConfig, KTMMethod, TD3MTMethod

METHODS = {cls.name: cls for cls in (IdealMethod, KTMMethod, TD3MTMethod)}
