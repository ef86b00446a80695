"""Google Security Operations (Chronicle) through the Chronicle API's `logs:import` (`type = "secops"`)."""
