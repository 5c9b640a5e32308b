# Every command a person needs; each is a script in scripts/ so CI runs the same thing.
.PHONY: dev show samples test sam-build bootstrap profile cost memory-size

dev:        ## run the function locally against moto (Ctrl-C stops it)
	scripts/dev
show:       ## print what the local run stored and alerted
	scripts/show
samples:    ## send every event in events/ to the local run
	scripts/samples
test:       ## every check and test: fmt, clippy, unit, integration (moto), template
	scripts/test
bootstrap:  ## install the pinned tools into .venv
	scripts/bootstrap
sam-build:  ## `sam build` (arm64, offline with cargo-lambda + zig), checked
	scripts/sam-build
cost:       ## the monthly bill at 1k, 100k and 10M deliveries, beside Hookdeck and Svix
	scripts/cost
profile:    ## instruction counts of the release webhook under callgrind (slow; not part of test)
	scripts/profile
memory-size: ## each function's latency and cost by MemorySize under a CPU quota (root; slow)
	scripts/memory-size
