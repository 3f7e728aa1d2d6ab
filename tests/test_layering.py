"""The import arrows point one way: sampling and evaluation never import the trainer, library
code never imports a config, and the lower layers know nothing above them. Imports inside
functions count too (they are read from the source, not from a running interpreter)."""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sora_jax"


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the sora_jax modules it imports anywhere in its source}, for every module."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
                imported.add(node.module)
        graph[module_name(path)] = {name for name in imported if name.startswith(("sora_jax", "configs"))}
    return graph


def reaches(graph: dict[str, set[str]], start: str, prefix: str) -> list[str]:
    """A chain of imports from `start` to a module under `prefix`, or [] when there is none."""
    seen, stack = set(), [(start, [start])]
    while stack:
        module, chain = stack.pop()
        for target in sorted(graph.get(module, ())):
            if target.startswith(prefix):
                return [*chain, target]
            if target in graph and target not in seen:
                seen.add(target)
                stack.append((target, [*chain, target]))
    return []


SAMPLING_AND_EVALUATION = ("sora_jax.generate", "sora_jax.pipelines.t2v", "sora_jax.pipelines.vae",
                           "sora_jax.checkpoints", "sora_jax.evaluation.likelihood", "sora_jax.evaluation.probes",
                           "sora_jax.evaluation.vae_suite", "sora_jax.scaling.compare", "sora_jax.scaling.fit",
                           "sora_jax.scaling.plots", "sora_jax.scaling.plan", "sora_jax.scaling.flops")


def test_sampling_and_evaluation_never_reach_the_trainer():
    graph = import_graph()
    for module in SAMPLING_AND_EVALUATION:
        assert module in graph, module
        assert not reaches(graph, module, "sora_jax.train"), " -> ".join(reaches(graph, module, "sora_jax.train"))


def test_library_code_never_imports_a_config():
    graph = import_graph()
    for module, imported in graph.items():
        if not module.startswith("sora_jax.configs"):
            assert not any(name.startswith(("sora_jax.configs", "configs")) for name in imported), module


def test_lower_layers_know_nothing_above_them():
    graph = import_graph()
    above = ("sora_jax.train", "sora_jax.scaling", "sora_jax.pipelines", "sora_jax.generate", "sora_jax.evaluation",
             "sora_jax.checkpoints", "sora_jax.cli")
    for module in graph:
        if module.startswith(("sora_jax.models", "sora_jax.diffusion", "sora_jax.kernels")):
            for prefix in (*above, "sora_jax.data"):
                assert not reaches(graph, module, prefix), " -> ".join(reaches(graph, module, prefix))
        if module.startswith("sora_jax.data"):
            for prefix in above:
                assert not reaches(graph, module, prefix), " -> ".join(reaches(graph, module, prefix))
