"""Local servers that stand in for paid services, speaking their real protocols."""
