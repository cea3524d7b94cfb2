"""Tasks that render: camera observations, reduced (proprio) state, headless OpenGL set-up."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mimetic.envs import make_env, make_expert
from mimetic.errors import MimeticError
from mimetic.features import ENV_STATE, IMAGE_PREFIX, PRIVILEGED_STATE, STATE

REACH_FAMILY = ["reach", "reach-bimodal", "reach-fork"]


def _batch(obs):
    return {k: v[None] for k, v in obs.items()} if isinstance(obs, dict) else obs[None]


def _run_expert(env_name, seeds, **options):
    """Successes of the task's expert on `seeds`, given the batched dict observations (it must read privileged.state)."""
    env, expert = make_env(env_name, **options), make_expert(env_name, **options)
    wins = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        expert.reset(1, seeds=[seed])
        done, info = False, {}
        while not done:
            obs, _, term, trunc, info = env.step(expert.act(_batch(obs))[0])
            done = term or trunc
        wins.append(bool(info["success"]))
    env.close()
    return wins


# ---- headless GL ------------------------------------------------------------------------------------

def test_importing_mimetic_does_not_import_mujoco():
    code = ("import sys, mimetic, mimetic.envs, mimetic.envs.render, mimetic.envs.metaworld, mimetic.envs.reach;"
            "print('mujoco' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_setup_gl_keeps_the_users_choice_and_says_what_to_install(monkeypatch):
    from mimetic.envs import render

    monkeypatch.setattr(render, "_chosen", None)
    monkeypatch.setenv("PYOPENGL_PLATFORM", "")  # restored (removed) afterwards, whatever setup_gl sets
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert render.setup_gl() == "osmesa" and os.environ["MUJOCO_GL"] == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setattr(render, "_PROBES", {"egl": lambda: False, "osmesa": lambda: False})
    assert render.setup_gl(required=False) is None and "MUJOCO_GL" not in os.environ
    with pytest.raises(MimeticError) as e:
        render.setup_gl()
    msg = str(e.value)
    assert "\n" not in msg and "libegl1" in msg and "libegl-mesa0" in msg and "libosmesa6" in msg
    # EGL failing, OSMesa working: OSMesa is chosen
    monkeypatch.setattr(render, "_PROBES", {"egl": lambda: False, "osmesa": lambda: True})
    monkeypatch.setattr(render, "_switch_imported_mujoco", lambda backend: None)
    assert render.setup_gl() == "osmesa" and os.environ["MUJOCO_GL"] == "osmesa"


# ---- Meta-World -------------------------------------------------------------------------------------

def test_metaworld_default_is_unchanged_and_proprio_is_the_first_four():
    plain = make_env("metaworld/reach-v3")
    cam = make_env("metaworld/reach-v3", cameras="corner4", image_size="32", state="proprio")
    full_cam = make_env("metaworld/reach-v3", cameras=["topview"], image_size=24)
    assert plain.observation_space.shape == (39,)
    assert set(cam.observation_space.spaces) == {STATE, PRIVILEGED_STATE, IMAGE_PREFIX + "corner4"}
    assert cam.observation_space[STATE].shape == (4,) and cam.observation_space[PRIVILEGED_STATE].shape == (39,)
    a, b, c = plain.reset(seed=3)[0], cam.reset(seed=3)[0], full_cam.reset(seed=3)[0]
    rng = np.random.default_rng(0)
    for _ in range(3):
        assert isinstance(a, np.ndarray) and a.dtype == np.float32
        np.testing.assert_array_equal(b[PRIVILEGED_STATE], a)
        np.testing.assert_array_equal(b[STATE], a[:4])
        np.testing.assert_array_equal(c[STATE], a)
        assert PRIVILEGED_STATE not in c
        assert b[IMAGE_PREFIX + "corner4"].shape == (32, 32, 3) and b[IMAGE_PREFIX + "corner4"].dtype == np.uint8
        assert c[IMAGE_PREFIX + "topview"].shape == (24, 24, 3)
        act = rng.uniform(-1, 1, 4)
        a, b, c = plain.step(act)[0], cam.step(act)[0], full_cam.step(act)[0]
    for env in (plain, cam, full_cam):
        env.close()


def test_metaworld_feature_names_follow_the_state():
    env = make_env("metaworld/pick-place-v3", state="proprio", cameras="corner4", image_size=16)
    obs, _ = env.reset(seed=0)
    names = env.unwrapped.feature_names
    assert names[STATE] == ["hand_x", "hand_y", "hand_z", "gripper"]
    full = names[PRIVILEGED_STATE]
    assert len(full) == 39 and len(set(full)) == 39
    s, mw = obs[PRIVILEGED_STATE], env.unwrapped._env
    np.testing.assert_allclose(s[[full.index(n) for n in ("hand_x", "hand_y", "hand_z")]], mw.data.body("hand").xpos, atol=1e-6)
    np.testing.assert_allclose(s[[full.index(n) for n in ("goal_x", "goal_y", "goal_z")]], mw._target_pos, atol=1e-6)
    np.testing.assert_allclose(s[[full.index(n) for n in ("obj1_x", "obj1_y", "obj1_z")]], mw._get_pos_objects(), atol=1e-6)
    assert full.index("prev_hand_x") == 18
    env.close()


def test_unknown_camera_is_a_one_line_error_listing_the_valid_ones():
    with pytest.raises(MimeticError, match=r"'cornr4'.*topview, corner, corner2, corner3, corner4, behindGripper, gripperPOV"):
        make_env("metaworld/reach-v3", cameras="corner4,cornr4")
    with pytest.raises(MimeticError, match="'side'.*top"):
        make_env("reach", cameras="side")
    with pytest.raises(MimeticError, match="state must be one of full, proprio"):
        make_env("reach-fork", state="partial")
    with pytest.raises(MimeticError, match="image_size"):
        make_env("reach", cameras="top", image_size="big")


def _hand_rows(env, cameras, up: bool) -> dict[str, float]:
    """Mean image row of the (painted magenta) gripper in each camera after moving it up or down."""
    mw = env.unwrapped._env
    env.reset(seed=0)
    for _ in range(25):
        env.step(np.array([0.0, 0.0, 1.0 if up else -1.0, 0.0]))
    assert mw.data.body("hand").xpos[2] > 0.25 if up else mw.data.body("hand").xpos[2] < 0.15
    rows = {}
    for camera in cameras:
        img = env.unwrapped.render_camera(camera).astype(int)
        magenta = (img[..., 0] > 150) & (img[..., 2] > 150) & (img[..., 1] < 80)
        assert magenta.sum() > 5, f"{camera}: the gripper is not in view"
        rows[camera] = float(np.nonzero(magenta)[0].mean())
    return rows


def test_metaworld_corner_images_are_upright():
    """Moving the gripper up moves it up in the image (the corner cameras come out of MuJoCo upside down)."""
    env = make_env("metaworld/reach-v3", cameras="corner4", image_size=128)
    model = env.unwrapped._env.model
    hand = model.body("hand").id
    for g in range(model.ngeom):  # paint the gripper (the hand and the bodies below it) magenta
        b = model.geom_bodyid[g]
        while b not in (0, hand):
            b = model.body_parentid[b]
        if b == hand:
            model.geom_rgba[g] = (1.0, 0.0, 1.0, 1.0)
            model.geom_matid[g] = -1
    cameras = ["corner", "corner2", "corner3", "corner4"]
    up, down = _hand_rows(env, cameras, up=True), _hand_rows(env, cameras, up=False)
    for camera in cameras:
        assert up[camera] < down[camera] - 2, camera
    env.close()


def test_two_metaworld_envs_render_as_each_alone():
    def frames(envs, order, seeds):
        out = {i: [] for i in range(len(envs))}
        for i, env in enumerate(envs):
            out[i].append(env.reset(seed=seeds[i])[0])
        for _ in range(3):
            for i in order:
                out[i].append(envs[i].step(np.array([0.5, -0.3, 0.2, 0.0]))[0])
        return out

    opts = dict(cameras="corner4,gripperPOV", image_size=32)
    tasks, seeds = ("reach-v3", "drawer-open-v3"), (0, 1)
    envs = [make_env(f"metaworld/{t}", **opts) for t in tasks]
    alone = [frames([env], [0], [s])[0] for env, s in zip(envs, seeds)]  # each env alone, one after the other
    together = frames(envs, [0, 1], seeds)  # the same episodes again, the two envs stepping in turn
    for i in range(2):
        for x, y in zip(alone[i], together[i]):
            for cam in ("corner4", "gripperPOV"):
                np.testing.assert_array_equal(x[IMAGE_PREFIX + cam], y[IMAGE_PREFIX + cam])
    a, b = together[0][-1][IMAGE_PREFIX + "corner4"], together[1][-1][IMAGE_PREFIX + "corner4"]
    assert (a != b).any(axis=-1).sum() > 5  # two different scenes (else a mix-up could not show)
    assert a.std() > 10  # not blank
    for env in envs:
        env.close()
        assert env.unwrapped._renderer is None


def test_metaworld_renders_only_with_cameras():
    env = make_env("metaworld/reach-v3")
    env.reset(seed=0)
    env.step(np.zeros(4))
    assert env.unwrapped._renderer is None
    env.close()


def test_metaworld_expert_solves_from_privileged_state():
    """Through rollout (dict observations, FunctionActor reading privileged.state); nothing privileged is recorded."""
    from mimetic.rollout import rollout

    opts = dict(cameras="corner4", image_size=16, state="proprio")
    episodes = rollout("metaworld/reach-v3", make_expert("metaworld/reach-v3", **opts), [0, 1], env_options=opts,
                       num_envs=2, workers=1)
    assert all(ep.successes.any() for ep in episodes)
    assert all(PRIVILEGED_STATE not in ep.obs and ep.obs[STATE].shape[1:] == (4,) for ep in episodes)
    assert episodes[0].obs[IMAGE_PREFIX + "corner4"].shape[1:] == (16, 16, 3)


def test_metaworld_fast_render_settings():
    import mujoco

    env = make_env("metaworld/reach-v3", cameras="corner4", image_size=16)
    env.reset(seed=0)
    r, model = env.unwrapped._renderer, env.unwrapped._env.model
    assert model.vis.quality.offsamples == 0
    assert r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] == 0 and r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] == 0
    env.close()


# ---- reach family -----------------------------------------------------------------------------------

def _pixel(x, y, size):
    """The pixel of point (x, y) in a top-down image of [-1, 1]^2 with y up."""
    return int((1 - y) / 2 * size), int((x + 1) / 2 * size)


@pytest.mark.parametrize("name", REACH_FAMILY)
def test_reach_top_camera_shows_agent_goal_and_obstacle(name):
    from mimetic.envs import reach

    env = make_env(name, cameras="top", state="proprio")
    assert env.observation_space[IMAGE_PREFIX + "top"].shape == (64, 64, 3)
    obs, _ = env.reset(seed=5)
    for t in range(8):
        img, full = obs[IMAGE_PREFIX + "top"], obs[PRIVILEGED_STATE]
        np.testing.assert_array_equal(obs[STATE], full[:4])
        assert tuple(img[_pixel(full[0], full[1], 64)]) == reach.AGENT_COLOUR
        if np.linalg.norm(full[4:6] - full[0:2]) > 0.25:
            assert tuple(img[_pixel(full[4], full[5], 64)]) == reach.GOAL_COLOUR
        if name != "reach":
            centre = full[6:8] if name == "reach-bimodal" else (0.0, 0.0)
            assert tuple(img[_pixel(centre[0], centre[1], 64)]) == reach.OBSTACLE_COLOUR
        assert tuple(img[0, 0]) == reach.BACKGROUND
        obs, *_ = env.step(np.array([0.3, 0.2]))
    env.close()


def test_reach_goal_is_seen_only_in_the_image():
    env = make_env("reach", cameras="top", state="proprio", image_size="48")
    a, _ = env.reset(seed=0)
    b, _ = env.reset(seed=1)
    assert a[STATE].shape == (4,) and a[IMAGE_PREFIX + "top"].shape == (48, 48, 3)
    assert not np.allclose(a[PRIVILEGED_STATE][4:6], b[PRIVILEGED_STATE][4:6])
    assert env.unwrapped.feature_names[STATE] == ["x", "y", "vx", "vy"]
    assert env.unwrapped.feature_names[PRIVILEGED_STATE] == ["x", "y", "vx", "vy", "goal_x", "goal_y"]
    # the goal moves between the episodes' images, at the goal's pixel
    from mimetic.envs import reach

    for obs in (a, b):
        gx, gy = obs[PRIVILEGED_STATE][4:6]
        assert tuple(obs[IMAGE_PREFIX + "top"][_pixel(gx, gy, 48)]) == reach.GOAL_COLOUR


@pytest.mark.parametrize("name,k", [("reach", 4), ("metaworld/pick-place-v3", 4)])
def test_proprio_env_records_the_rest_of_the_state_as_environment_state(name, k):
    """state=proprio+env: observation.state as under proprio, and the rest of the full state (objects, goal) as
    observation.environment_state, named; the expert still reads the full state and does the same."""
    split = make_env(name, cameras="top" if name == "reach" else "corner4", image_size=16, state="proprio+env")
    proprio = make_env(name, cameras="top" if name == "reach" else "corner4", image_size=16, state="proprio")
    names = split.unwrapped.feature_names
    assert names[ENV_STATE] == names[PRIVILEGED_STATE][k:] and names[STATE] == names[PRIVILEGED_STATE][:k]
    assert split.observation_space[ENV_STATE].shape == (len(names[PRIVILEGED_STATE]) - k,)
    assert ENV_STATE not in proprio.observation_space.spaces
    a, b = split.reset(seed=5)[0], proprio.reset(seed=5)[0]
    expert_a, expert_b = make_expert(name), make_expert(name)
    expert_a.reset(1, [5])
    expert_b.reset(1, [5])
    for _ in range(3):
        np.testing.assert_array_equal(a[ENV_STATE], a[PRIVILEGED_STATE][k:])
        np.testing.assert_array_equal(a[STATE], b[STATE])
        assert split.observation_space.contains(a)
        act_a = expert_a.act({key: v[None] for key, v in a.items()})[0]
        act_b = expert_b.act({key: v[None] for key, v in b.items()})[0]
        np.testing.assert_array_equal(act_a, act_b)
        a, b = split.step(act_a)[0], proprio.step(act_b)[0]
    split.close()
    proprio.close()


@pytest.mark.parametrize("name", REACH_FAMILY)
def test_reach_default_unchanged_and_no_rendering_without_cameras(name, monkeypatch):
    from mimetic.envs.reach import ReachEnv

    plain, cam = make_env(name), make_env(name, cameras="top")
    assert plain.observation_space.shape == cam.observation_space[STATE].shape
    assert list(cam.unwrapped.feature_names) == [STATE]
    a, b = plain.reset(seed=2)[0], cam.reset(seed=2)[0]
    np.testing.assert_array_equal(a, b[STATE])

    def no_render(*args, **kwargs):
        raise AssertionError("rendered without cameras")

    monkeypatch.setattr(ReachEnv, "render_camera", no_render)
    plain.reset(seed=3)
    plain.step(np.zeros(2))


@pytest.mark.parametrize("name", REACH_FAMILY)
def test_reach_experts_solve_from_privileged_state(name):
    wins = _run_expert(name, range(6), cameras="top", state="proprio")
    assert sum(wins) >= 5


def test_default_cameras():
    import importlib

    from mimetic.envs import metaworld, reach, reach_bimodal, reach_fork

    gym_task = importlib.import_module("mimetic.envs.gym")  # (mimetic.envs.gym the attribute is gymnasium)

    assert (reach.DEFAULT_CAMERA, reach_bimodal.DEFAULT_CAMERA, reach_fork.DEFAULT_CAMERA) == ("top",) * 3
    assert metaworld.DEFAULT_CAMERA == "corner4" and gym_task.DEFAULT_CAMERA == "render"


# ---- gym/<id> ---------------------------------------------------------------------------------------

def test_gym_render_camera():
    pytest.importorskip("pygame")
    env = make_env("gym/Pendulum-v1", cameras="render", image_size=40)
    plain = make_env("gym/Pendulum-v1")
    obs, _ = env.reset(seed=0)
    ref, _ = plain.reset(seed=0)
    np.testing.assert_array_equal(obs[STATE], ref)
    img = obs[IMAGE_PREFIX + "render"]
    assert img.shape == (40, 40, 3) and img.dtype == np.uint8 and img.std() > 5
    obs2, *_ = env.step(np.array([2.0]))
    assert obs2[IMAGE_PREFIX + "render"].shape == (40, 40, 3)
    assert env.unwrapped.feature_names == {STATE: ["state_0", "state_1", "state_2"]}
    env.close()
    plain.close()
    with pytest.raises(MimeticError, match="'top'.*render"):
        make_env("gym/Pendulum-v1", cameras="top")


@pytest.mark.parametrize("task", ["reach-v3", "pick-place-v3"])
def test_metaworld_reset_frame_shows_this_episodes_goal(task):
    """Meta-World moves the goal marker after its last forward pass: the first frame must not show the old goal."""
    import mujoco

    env = make_env(f"metaworld/{task}", cameras="corner4", image_size=64, state="proprio")
    for seed in (0, 1):
        first = env.reset(seed=seed)[0][IMAGE_PREFIX + "corner4"]
        inner = env.unwrapped._env
        goal = inner.model.site("goal").id
        np.testing.assert_allclose(inner.data.site_xpos[goal], inner._target_pos, atol=1e-6)
        mujoco.mj_forward(inner.model, inner.data)
        np.testing.assert_array_equal(first, env.unwrapped.render_camera("corner4"))
    env.close()


def test_metaworld_cameras_do_not_change_the_dynamics():
    """Rendering (and the reset's marker update) leave the physics as without cameras, to the last bit."""
    with_cam = make_env("metaworld/pick-place-v3", cameras="corner4", image_size=16)
    plain = make_env("metaworld/pick-place-v3")
    with_cam.reset(seed=3), plain.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(60):
        action = rng.uniform(-1, 1, 4)
        a, b = with_cam.step(action)[0][STATE], plain.step(action)[0]
        np.testing.assert_array_equal(a, b)
    with_cam.close(), plain.close()
