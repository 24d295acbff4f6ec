"""Activities: the stored samples split into rides and runs, with their summaries.

    names      an activity's name when the owner gave none
    settings   a user's activity settings (gap, moving threshold, heart-rate and power zones)
    summary    an activity's summary and laps from its samples (pure: columns in, numbers out)
"""
