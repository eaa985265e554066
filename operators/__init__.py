"""Domain logic as plain, tested units: velocity windows, rules, scoring, decision policy."""
