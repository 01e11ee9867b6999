"""PettingZoo parallel environments of AlgoSpace (strategic_v0, tactical_v0, joint_v0,
single_v0)."""
