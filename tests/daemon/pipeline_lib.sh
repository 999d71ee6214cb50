# Shared by the pipeline process tests (sourced, after process_test_lib.sh).
# fmnist_pipeline NAME TRIGGER [LINE...]: the head of a [[pipelines]] table that trains the mlp
# model on flat Fashion-MNIST samples (784 features, 10 classes) when trigger plugin TRIGGER
# fires; each LINE goes into the pipeline's own table. It ends inside [pipelines.trigger], so the
# trigger's parameters, then the pipeline's other tables, follow.
fmnist_pipeline() {
  local name=$1 trigger=$2
  shift 2
  printf '\n[[pipelines]]\nname = "%s"\nmodel = "mlp"\n' "$name"
  if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi
  printf '[pipelines.stream]\nshape = [784]\nclasses = 10\n[pipelines.trigger]\nplugin = "%s"\n' \
    "$trigger"
}
