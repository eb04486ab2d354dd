"""Test-session settings.

* Hypothesis runs derandomized under CI (``CI`` set), so that a CI run is reproducible; local
  runs keep exploring new random examples (and keep the ones that failed in ``.hypothesis/``).
* The header of the session (and, after skipped GPU tests, the summary) says once whether
  CUDA can run here and, if not, why: the GPU tests skip with a short reason.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_report_header(config) -> list[str]:
    """One line on CUDA: usable here, or why the GPU tests skip."""
    from otgrid._device import cuda_status

    status = cuda_status()
    if status.startswith("available"):
        return [f"otgrid CUDA: {status}"]
    return [f"otgrid CUDA: {status}; the GPU tests skip (the simulator runs the kernels)"]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """After skipped GPU tests, say once why (``-q`` hides the header)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if any("CUDA" in str(getattr(r, "longrepr", "")) for r in skipped):
        from otgrid._device import cuda_status

        terminalreporter.write_line(f"GPU tests skipped: CUDA here is {cuda_status()}")


# Tests of more than about 2 seconds (pytest --durations on a shared 2-core machine), marked
# `slow` here in one place: `pytest -m "not slow"` leaves them out (under 2 minutes in all).
# A whole module is given by "ALL". New tests of this kind are best marked in their own file
# (@pytest.mark.slow); this table holds the ones measured when the marker was introduced.
SLOW: dict[str, set[str] | str] = {
    "tests/test_demos.py": "ALL",
    "tests/test_docs.py": "ALL",
    "tests/distributed/test_sweeps_cluster.py": "ALL",    # Dask clusters of processes
    "tests/explore/test_browser.py": "ALL",               # a browser driving the explorer
    "tests/explore/test_server.py": {
        "test_audit_of_an_uploaded_state_dict",
    },
    "tests/fuzz/test_fuzz_api.py": {
        "test_solve_critic_returns_certified_bounds_or_a_clean_error",
    },
    "tests/fuzz/test_fuzz_cli.py": {
        "test_cli_exits_0_1_or_2_with_one_line",
        "test_cli_process_exits_0_1_or_2_with_one_line",
    },
    "tests/fuzz/test_fuzz_spec.py": {
        "test_spec_grammar_accepts_or_refuses_in_one_line",
    },
    "tests/auditing/test_audit.py": {
        "test_exact_critic_audits_perfectly",
    },
    "tests/auditing/test_baselines.py": {
        "test_cli_audit",
        "test_same_seed_same_weights",
        "test_spectral_norm_close_to_one",
    },
    "tests/cli/test_cli.py": {
        "test_critic_2d_cityblock_matches_pot",
        "test_extreme_numbers_in_a_real_process",
        "test_parallel_lines_pair",
        "test_python_dash_m",
    },
    "tests/cli/test_memory.py": {
        "test_estimate_holds_the_measured_peak",
    },
    "tests/critic/test_certify.py": {
        "test_anisotropic_problem_reaches_tol_instead_of_a_box_sized_floor",
        "test_integer_cityblock_bounds_bracket_the_exact_lp_value",
    },
    "tests/critic/test_critic_cuda.py": {
        "test_kernels_under_the_simulator",
    },
    "tests/critic/test_critic_paths.py": {
        "test_adaptive_restarts_beat_the_fixed_step_on_the_gaussian_pair",
        "test_batch_brackets_references_and_matches_single_solves",
        "test_float32_precision_floor_goes_on_in_float64",
        "test_multilevel_brackets_the_socp_reference",
        "test_paths_bracket_the_cityblock_reference",
    },
    "tests/critic/test_critic_properties.py": {
        "test_bounds_bracket_emd2_cityblock",
        "test_length_scale_equivariance",
        "test_mass_scale_equivariance",
        "test_numpy_and_numba_agree",
        "test_repair_moves_a_cell_only_as_far_as_its_constraint_forces",
        "test_symmetry_and_sign_2d",
        "test_translation_2d",
    },
    "tests/grid/test_cuda_interp.py": {
        "test_interpolant_under_the_simulator",
    },
    "tests/grid/test_datasets.py": {
        "test_eight_gaussians_masses_vs_histogram",
        "test_swissroll_masses_resolution",
        "test_swissroll_masses_vs_histogram",
    },
    "tests/grid/test_funnels.py": {
        "test_area_identity_and_region_masses_against_midpoint_quadrature",
        "test_auditing_the_true_potential_runs",
        "test_cell_masses_match_a_histogram",
        "test_deg_inf_puts_the_region_masses_on_the_apex_cells",
        "test_fast_owner_and_exit_distance_match_brute_force",
        "test_mean_and_samples_of_the_target",
        "test_potential_is_1_lipschitz_with_unit_gradient",
        "test_the_coupled_sampler",
        "test_the_draw_keeps_every_apex_deep_in_its_region",
        "test_transport_moves_mass_along_the_rays",
        "test_w1_matches_a_brute_force_monte_carlo",
    },
    "tests/grid/test_interp.py": {
        "test_lipschitz_2d_outside_and_across",
        "test_lipschitz_critic_is_below_discrete_w1_and_corner_optimum",
        "test_lipschitz_interpolant_cityblock_keeps_feasible_critic",
        "test_lipschitz_interpolant_of_optimal_critic",
        "test_plain_bilinear_critic_is_not_1_lipschitz",
    },
    "tests/pointcloud/test_regularized.py": {
        "test_mixed_precision_below_the_float32_floor",
        "test_mixed_precision_certified_against_pot",
        "test_multiscale_start_matches_pot",
        "test_sinkhorn_matches_pot_log_domain",
        "test_smooth_l2_matches_pot_with_converted_reg",
        "test_smooth_l2_switches_to_the_pairwise_change_near_the_optimum",
    },
    "tests/pointcloud/test_regularized_coarse.py": {
        "test_coarse_solve_matches_plain_solve_and_pot",
        "test_coarse_zero_weights_and_warm_start",
    },
    "tests/pointcloud/test_regularized_cuda.py": {
        "test_simulated_kernels_match_dense_references",
        "test_simulated_kernels_stride_beyond_a_capped_grid",
        "test_simulated_launches_are_the_signatures_compiled_to_ptx",
        "test_simulated_solvers_match_pot_and_numba",
    },
    "tests/sco/test_generators_torch.py": {
        "test_a_torch_affine_generator_trains_in_fit_with_sampled_masses",
        "test_vjp_matches_central_finite_differences",
    },
    "tests/sco/test_sco.py": {
        "test_1d_gaussian_fit_reaches_grid_accuracy",
        "test_2d_gaussian_fit_reaches_grid_accuracy",
        "test_adam_converges_too",
        "test_cli_sco_1d",
        "test_generator_outside_the_grid_is_reported_and_pulled_back",
        "test_plot_sco_panels",
        "test_prox_needs_fewer_critic_solves",
        "test_sample_masses_and_a_duck_typed_generator",
        "test_sco_gradient_is_the_derivative_of_certified_w_2d_affine",
    },
    "tests/sco/test_sco_smoothed.py": {
        "test_gaussian_fit_converges",
    },
    "tests/test_plot.py": {
        "test_importing_otgrid_does_not_choose_a_backend",
    },
    "tests/test_ptx.py": {
        "test_kernel_compiles_for_sm90",
    },
}


def pytest_collection_modifyitems(config, items) -> None:
    """Mark the tests of :data:`SLOW` ``slow``."""
    for item in items:
        path, _, name = item.nodeid.partition("::")
        slow = SLOW.get(path)
        if slow == "ALL" or (slow and name.split("[")[0] in slow):
            item.add_marker(pytest.mark.slow)
