"""placeholder package; see ARCHITECTURE.md"""
