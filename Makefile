# Benchmarks (README, "Benchmarks"): the full harness and its smoke run.
.PHONY: bench bench-short

bench:
	go run ./bench

bench-short:
	go run ./bench -short
