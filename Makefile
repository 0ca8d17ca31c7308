.PHONY: serve test
serve:
	scripts/serve.sh
test:
	scripts/test.sh
.PHONY: native
native:
	scripts/build_native.sh --set all
