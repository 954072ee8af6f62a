def average_of_positive(values):
    """Mean of the strictly positive numbers in values (0.0 if there are none)."""
    total = 0
    count = 0
    for value in values:
        if value >= 0:
            total += value
            count += 1
    return total / count if count else 0.0
