"""Stage modules: each declares one StageSpec and the registry, the config and the adapter map agree with it; every
structured stage decodes into its Struct through StageLLM (grammar-constrained, logged), the generate stage yields
text, every decision stage yields one of its labels, and the deterministic renderers produce C that gcc accepts."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from pipeline_support import tiny_config

from cra.pipeline.calllog import CallLog
from cra.pipeline.config import STAGES, load_config
from cra.pipeline.engine import LocalEngine
from cra.pipeline.llm import StageLLM
from cra.pipeline.router import ModelRouter
from cra.pipeline.sandbox import compile_unit, run_generated_test
from cra.pipeline.stages import adjustment as a4
from cra.pipeline.stages import documentation as a9
from cra.pipeline.stages import implement as a6
from cra.pipeline.stages import meta_plan as a1
from cra.pipeline.stages import precision as a8
from cra.pipeline.stages import refilter as a10
from cra.pipeline.stages import registry
from cra.pipeline.stages import routing as a12
from cra.pipeline.stages import scaffold as a3
from cra.pipeline.stages import scope as a11
from cra.pipeline.stages import test_generation as a7
from cra.pipeline.stages.doxygen import render_block
from cra.pipeline.stages.registry import STAGE_MODULES, STAGE_SPECS, spec_for
from cra.pipeline.stages.spec import MODES, StageSpec

MODULES = ["meta_plan", "part_plan", "scaffold", "adjustment", "task_analysis", "implement", "test_generation",
           "precision", "documentation", "refilter", "scope", "routing"]
CONTEXT = "typedef struct point { int x; int y; } Point;\nint point_x(const Point *p);"


@pytest.fixture
def llm(tmp_path: Path, engine: LocalEngine, long_tiny_model: Path, log: CallLog) -> StageLLM:
    config = tiny_config(tmp_path, long_tiny_model)
    return StageLLM(ModelRouter(config, root=tmp_path), engine, log, task_id="t-stages")


def test_every_stage_module_declares_its_contract() -> None:
    codes = []
    for name in MODULES:
        module = importlib.import_module(f"cra.pipeline.stages.{name}")
        spec = module.SPEC
        assert [v for v in vars(module).values() if isinstance(v, StageSpec)] == [spec], name  # exactly one
        assert spec.name in STAGES, name
        assert spec.mode in ("generate", "structured", "decision", "deterministic")
        assert spec.default_adapter.startswith(spec.code.lower() + "-")
        assert len(module.SYSTEM) > 40
        if spec.mode == "structured":
            assert issubclass(spec.output_type, msgspec.Struct)
        codes.append(spec.code)
    assert sorted(codes, key=lambda c: int(c[1:])) == [f"A{i}" for i in range(1, 13)]
    assert [m.__name__.rsplit(".", 1)[1] for m in STAGE_MODULES] == MODULES  # the registry collects them all


def _all_specs() -> list[StageSpec]:
    def walk(spec: StageSpec) -> list[StageSpec]:
        return [spec] + [s for sub in spec.subdecisions for s in walk(sub)]
    return [s for m in STAGE_MODULES for s in walk(m.SPEC)]


def test_registry_config_and_adapter_map_are_one_list() -> None:
    specs = _all_specs()
    assert list(STAGE_SPECS.values()) == specs and len(STAGE_SPECS) == len(specs) == 18  # names are unique
    assert set(STAGES) == set(STAGE_SPECS)  # every config stage is in the registry and vice versa
    names = [s.default_adapter for s in specs]
    assert len(set(names)) == len(names)
    for spec in specs:
        assert STAGES[spec.name] == spec.title and spec.code in {f"A{i}" for i in range(1, 13)}
        assert spec_for(spec.name) is spec
        for sub in spec.subdecisions:  # sub-decisions refine their parent: same code, a decision of their own
            assert sub.parent == spec.name and sub.code == spec.code and sub.mode == "decision"
        assert spec.parent is None or spec in STAGE_SPECS[spec.parent].subdecisions
    # The tier, and with it the default role, follows the mode: decisions on tier 0, everything else on tier 1.
    config = load_config(None, user=False)
    for spec in specs:
        assert spec.tier == (0 if spec.mode == "decision" else 1)
        assert config.stage(spec.name).role == (config.tiers.tier0 if spec.tier == 0 else config.tiers.tier1)


def test_each_mode_has_what_its_call_needs() -> None:
    for spec in STAGE_SPECS.values():
        assert spec.mode in MODES, spec.name
        if spec.mode == "decision":  # llm.decide / decide_batch: a few labels, no output struct
            assert len(spec.labels) >= 2 and spec.output_type is None, spec.name
        elif spec.mode == "structured":  # llm.structured: a Struct of the stage's own module, built by its prompt
            assert isinstance(spec.output_type, type) and issubclass(spec.output_type, msgspec.Struct), spec.name
            assert spec.output_type.__module__ == spec.prompt.__module__ and not spec.labels, spec.name
        else:  # llm.generate: text, neither labels nor a struct
            assert spec.output_type is None and not spec.labels and spec.prompt is not None, spec.name
        if spec.parent is None and spec.mode != "decision":
            assert spec.prompt is not None and spec.prompt.__module__ == f"cra.pipeline.stages.{spec.name}"


# `llm.<method>(stage, ...)` → the mode the stage must declare.
CALL_MODES = {"generate": "generate", "structured": "structured", "decide": "decision", "decide_batch": "decision"}
# Stages with a prompt that no flow calls yet.
UNWIRED = {"refilter"}


def _stage_calls() -> list[tuple[str, str, str]]:
    """(where, llm method, stage) for every call in the package whose first argument names a registry stage, as
    `<stage module>.SPEC.name` or as a string."""
    found: list[tuple[str, str, str]] = []
    package = Path(registry.__file__).parents[2]  # cra/
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {alias.asname or alias.name: importlib.import_module(f"cra.pipeline.stages.{alias.name}")
                   for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.module == "cra.pipeline.stages"
                   for alias in node.names}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in CALL_MODES and node.args):
                continue
            arg = node.args[0]
            stage = None
            if isinstance(arg, ast.Constant) and arg.value in STAGE_SPECS:
                stage = arg.value
            elif (isinstance(arg, ast.Attribute) and arg.attr == "name" and isinstance(arg.value, ast.Attribute)
                  and arg.value.attr == "SPEC" and isinstance(arg.value.value, ast.Name)
                  and arg.value.value.id in modules):
                stage = modules[arg.value.value.id].SPEC.name
            if stage is not None:
                found.append((f"{path.relative_to(package)}:{node.lineno}", node.func.attr, stage))
    return found


def test_modes_match_how_the_package_calls_the_stages() -> None:
    calls = _stage_calls()
    for where, method, stage in calls:
        assert STAGE_SPECS[stage].mode == CALL_MODES[method], f"{where}: {method}({stage!r}) but the spec says " \
                                                               f"{STAGE_SPECS[stage].mode!r}"
    wired = {m.SPEC.name for m in STAGE_MODULES if m.SPEC.prompt is not None} - UNWIRED
    assert wired <= {stage for _, _, stage in calls}, "a stage's call was not found: update _stage_calls"


def test_context_asks_under_the_registrys_sub_decisions() -> None:
    from cra.pipeline.context import precision, scope
    assert set(scope.STAGE_BY_TIER.values()) == set(a11.TIER_STAGES)
    assert (precision.STAGE_RELEVANT, precision.STAGE_PRIMARY, precision.STAGE_SUPPORTING) == a8.CASCADE
    assert {*a11.TIER_STAGES, *a8.CASCADE} == {n for n, s in STAGE_SPECS.items() if s.parent}


def test_importing_the_registry_is_cheap() -> None:
    """`pipeline.config` reads the registry: importing either loads neither llama.cpp nor tree-sitter."""
    code = ("import sys, cra.pipeline.config, cra.pipeline.stages.registry; "
            "print(sorted(m for m in ('llama_cpp', 'tree_sitter', 'cra.pipeline.engine', 'cra.pipeline.context') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


STRUCTURED_CALLS = {
    "meta_plan": lambda m: m.build_messages(context=CONTEXT, task="add a midpoint function"),
    "part_plan": lambda m: m.build_messages(context=CONTEXT, task="t", part_name="math", part_goal="g",
                                            depends_on=["types"]),
    "adjustment": lambda m: m.build_messages(context=CONTEXT, goal="g", failure="x.c:3: error: oops",
                                             change="int f(void) { return y; }", remaining=["fix f"],
                                             round_number=1),
    "task_analysis": lambda m: m.build_messages(context=CONTEXT, task="add midpoint", files=["point.c"]),
    "test_generation": lambda m: m.build_messages(context=CONTEXT, function="point_x", contract="",
                                                  declaration="int point_x(const Point *p)"),
    "refilter": lambda m: m.build_messages(task="t", files=[a10.FileEntry("a.c", 900)], budget=500),
}


# The random tiny model fills grammar-bounded strings to their maximum: the big outputs take minutes on 2 cores.
HEAVY = {"meta_plan", "test_generation", "adjustment"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
                                  for n in sorted(STRUCTURED_CALLS)])
def test_structured_stage_decodes_into_its_struct(name: str, llm: StageLLM, log: CallLog) -> None:
    module = importlib.import_module(f"cra.pipeline.stages.{name}")
    spec = module.SPEC
    assert spec.prompt is module.build_messages
    messages = STRUCTURED_CALLS[name](module)
    assert messages[0].role == "system" and messages[1].content.startswith("Project context:")
    value = llm.structured(spec.name, messages, spec.output_type)
    assert isinstance(value, spec.output_type)
    (row,) = log.calls(stage=spec.name)
    assert msgspec.json.decode(row.response.encode(), type=spec.output_type) == value
    assert row.grammar and row.task_id == "t-stages"


def test_generate_stage_continues_its_prompt_as_text(llm: StageLLM, log: CallLog) -> None:
    messages = a6.SPEC.prompt(context=CONTEXT, doc="/** The x of p. */", signature="int point_x(const Point *p)",
                              name="point_x")
    assert messages[-1].role == "assistant" and messages[-1].content.endswith("{\n")
    gen = llm.generate(a6.SPEC.name, messages, max_tokens=8)
    assert isinstance(gen.text, str)
    (row,) = log.calls(stage=a6.SPEC.name)
    assert row.grammar is None and row.response == gen.text


def test_stages_share_the_context_prefix() -> None:
    first = a1.build_messages(context=CONTEXT, task="x")
    second = a4.build_messages(context=CONTEXT, goal="g", failure="f", change="c", remaining=[], round_number=1)
    assert first[:2] == second[:2] and first[2] != second[2]


def test_decision_stages_yield_labels(llm: StageLLM, log: CallLog) -> None:
    prefix = a12.build_prefix(action="plan", task="add midpoint", target="point.c")
    decisions = llm.decide_batch(a12.SPEC.name, prefix, [a12.question("task_analysis"), a12.question("adjustment")],
                                 labels=a12.LABELS)
    assert [d.label in a12.LABELS for d in decisions] == [True, True]
    assert abs(sum(decisions[0].probs.values()) - 1.0) < 1e-6
    for judge in (a8.judge(llm), a11.judge(llm)):
        answers = judge("precision_relevant", "Task: x", ["Symbol `int f(void)`. Needed?", "Symbol `g`. Needed?"])
        assert len(answers) == 2 and all(isinstance(yes, bool) and 0.5 <= p <= 1.0 for yes, p in answers)
    assert len(log.calls(stage="routing")) == 2 and len(log.calls(stage="precision_relevant")) == 4


def test_meta_plan_ordering_drops_unknown_and_cyclic_edges() -> None:
    plan = a1.MetaPlan(summary="s", parts=[a1.PlanPart("api", "g"), a1.PlanPart("impl", "g"),
                                           a1.PlanPart("tests", "g"), a1.PlanPart("api", "dup")],
                       edges=[a1.DependencyEdge("tests", "impl"), a1.DependencyEdge("impl", "api"),
                              a1.DependencyEdge("api", "tests"), a1.DependencyEdge("impl", "ghost"),
                              a1.DependencyEdge("impl", "impl")])
    parts, edges = a1.order_parts(plan)
    assert [p.name for p in parts] == ["api", "impl", "tests"]
    assert [(e.part, e.depends_on) for e in edges] == [("tests", "impl"), ("impl", "api")]


def test_scaffold_renders_prototypes_and_stubs_that_compile(tmp_path: Path) -> None:
    specs = [
        a3.FunctionSpec(name="area", return_type="long", brief="Area. */ not a terminator", returns="the area",
                        contract="w and h are non-negative",
                        params=[a3.ParamSpec("w", "int", "width"), a3.ParamSpec("h", "int", "height")]),
        a3.FunctionSpec(name="name_of", return_type="const char *", params=[], brief="b", returns="r", contract=""),
        a3.FunctionSpec(name="origin", return_type="struct pt", params=[], brief="b", returns="r", contract=""),
        a3.FunctionSpec(name="reset", return_type="void", params=[a3.ParamSpec("p", "struct pt *", "it")],
                        brief="b", returns="", contract=""),
    ]
    header = "struct pt { int x; };\n" + "\n".join(a3.render_prototype(s) for s in specs)
    assert "*/ not" not in header and "const char *name_of(void);" in header
    (tmp_path / "geo.h").write_text(header)
    source = '#include "geo.h"\n' + "\n".join(a3.render_stub(s) for s in specs)
    result = compile_unit(tmp_path, "geo.c", source, flags=["-std=c11", "-Wall", "-Wextra", "-Werror"])
    assert result.ok, result.stderr
    from cra.pipeline.context import parse_source
    stubs = {s.name: s.is_stub for s in parse_source("geo.c", source.encode()).symbols if s.kind == "function"}
    assert stubs == {"area": True, "name_of": True, "origin": True, "reset": True}  # implement can fill them


def test_generated_test_program_runs_and_catches_a_wrong_result(tmp_path: Path) -> None:
    (tmp_path / "add.c").write_text("int add(int a, int b) { return a + b; }\n")
    suite = a7.TestSuite(cases=[
        a7.TestCase("adds", "happy_path", "small numbers", "CHECK(add(2, 3) == 5);"),
        a7.TestCase("adds", "edge_case", "zero", "CHECK(add(0, 0) == 0);\nCHECK(add(-1, 1) == 0);"),
    ])
    text = a7.render_test_file(suite, library="plain", function="add", includes=[],
                               declarations=["int add(int a, int b)"])
    assert "static void test_adds(void)" in text and "static void test_adds_2(void)" in text
    passed = run_generated_test(tmp_path, ["add.c"], text)
    assert passed.ok, passed.output
    wrong = a7.TestSuite(cases=[a7.TestCase("bad", "error_path", "d", "CHECK(add(2, 2) == 5);")])
    failed = run_generated_test(tmp_path, ["add.c"], a7.render_test_file(
        wrong, library="plain", function="add", includes=[], declarations=["int add(int a, int b)"]))
    assert failed.ok is False and "FAIL: add(2, 2) == 5" in failed.output


def test_trivial_functions_are_documented_without_a_model() -> None:
    getter = a9.trivial_doc(body="{ return p->x; }", params=["p"], returns_void=False)
    setter = a9.trivial_doc(body="{\n  p->x = v;\n}", params=["p", "v"], returns_void=True)
    constant = a9.trivial_doc(body="{ return 42; }", params=[], returns_void=False)
    assert getter is not None and getter.returns == "the value of `p->x`."
    assert setter is not None and [p.name for p in setter.params] == ["p", "v"]
    assert constant is not None and constant.brief == "Returns `42`."
    assert a9.trivial_doc(body="{ return p->x + 1; }", params=["p"], returns_void=False) is None
    assert a9.trivial_doc(body="{ return q->x; }", params=["p"], returns_void=False) is None


def test_doc_rendering_uses_the_real_parameters() -> None:
    doc = a9.FunctionDoc(brief="Adds.", params=[a9.ParamDoc("b", "second"), a9.ParamDoc("zz", "ghost")],
                         returns="the sum", notes="")
    block = a9.render_function_doc(doc, params=["a", "b"], returns_void=False, indent="    ")
    assert block.splitlines() == ["    /**", "     * @brief Adds.", "     * @param a (no description)",
                                  "     * @param b second", "     * @return the sum", "     */"]
    assert render_block(brief="x */ y").count("*/") == 1


def test_refilter_keeps_the_required_file_and_the_budget() -> None:
    files = [a10.FileEntry("a.c", 300), a10.FileEntry("b.c", 300), a10.FileEntry("c.c", 300)]
    assert a10.fits(files[:1], 500) and not a10.fits(files, 500)
    kept = a10.apply(a10.Refilter(keep=[2, 7, -1, 2, 1]), files, 650, required="a.c")
    assert [f.path for f in kept] == ["a.c", "c.c"]


def test_adjustment_feedback_folds_into_the_retry_prompt() -> None:
    text = a4.as_feedback("x.c:3: error: y undeclared", a4.Adjustment(diagnosis="uses y", focus="declare y",
                                                                     steps=["declare y", "return y"]))
    assert text.splitlines() == ["x.c:3: error: y undeclared", "Diagnosis: uses y", "Focus: declare y",
                                 "Revised steps:", "1. declare y", "2. return y"]
    assert a4.as_feedback("boom", None) == "boom"
