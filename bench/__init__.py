"""The project's benchmarks. Run each from the repository root as a module, e.g.
`python -m bench.speed`; each prints its figures, and bench/results/ holds their committed output."""
