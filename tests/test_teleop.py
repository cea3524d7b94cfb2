"""Teleoperation without a screen: a scripted input source drives the human-expert actor and the recorder;
pygame (optional) is exercised headless with SDL's dummy video driver."""

import subprocess
import sys

import numpy as np
import pytest

from mimetic.cli import main
from mimetic.data import Dataset
from mimetic.errors import MimeticError
from mimetic.teleop import InputState, ScriptedInput, TeleopActor, record


def script(*episodes):
    """episodes: (steps, axes, mark) -> input states; after the last one the source quits."""
    states = []
    for steps, axes, mark in episodes:
        states += [InputState(axes=axes) for _ in range(steps)]
        if mark is not None:
            states.append(InputState(axes=axes, mark_success=mark == "success", mark_failure=mark == "failure"))
    return ScriptedInput(states)


def test_record_marks_success_and_failure_and_discards_the_unfinished(tmp_path):
    src = script((6, [1.0, 0.0], "success"), (4, [0.0, -0.5], "failure"), (3, [0.2, 0.2], None))
    ds = record("reach", tmp_path / "d", 5, src, gain=0.5)
    assert ds.num_episodes == 2 and ds.episode_lengths().tolist() == [6, 4]  # the third was cut by quitting
    assert np.allclose(ds.actions[:6], [0.5, 0.0]) and np.allclose(ds.actions[6:], [0.0, -0.25])
    assert ds.extra("marked_success")[ds.episode_starts].tolist() == [True, False]
    assert ds.info["mimetic"]["next_seed"] == 2
    # appending continues with fresh seeds; an episode that ends on its own is marked by the env's success
    ds = record("reach", tmp_path / "d", 1, script((200, [0.0, 0.0], None)), env_options={})
    assert ds.num_episodes == 3 and ds.episode_lengths()[-1] == 100 and not ds.extra("marked_success")[-1]
    assert ds.info["mimetic"]["next_seed"] == 3
    first_obs = [ds.episode(i).observations[0] for i in range(3)]
    assert len({tuple(o) for o in first_obs}) == 3
    with pytest.raises(MimeticError, match="was recorded in 'reach'"):
        record("reach", tmp_path / "d", 1, script((3, [0, 0], "success")), env_options={"max_steps": 5})
    with pytest.raises(MimeticError, match="no episode was recorded"):
        record("reach", tmp_path / "e", 1, ScriptedInput([]))


def test_teleop_actor():
    actor = TeleopActor(ScriptedInput([InputState(axes=[2.0, -0.3, 0.9], toggle_takeover=True),
                                       InputState(axes=[0.1]), InputState(toggle_takeover=True, quit=True)]), act_dim=2)
    assert np.allclose(actor.act(np.zeros((1, 6))), [[1.0, -0.3]]) and actor.takeover  # clipped, cut to act_dim
    assert np.allclose(actor.act(np.zeros((1, 6))), [[0.1, 0.0]]) and actor.takeover  # padded
    actor.act(np.zeros((1, 6)))
    assert not actor.takeover and actor.quit
    with pytest.raises(MimeticError, match="one environment at a time"):
        actor.act(np.zeros((2, 6)))


def test_pygame_is_imported_only_for_teleop():
    code = "import sys, mimetic.teleop, mimetic.cli, mimetic.algos.dagger; assert 'pygame' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_missing_pygame_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame -> ImportError
    assert main(["-q", "teleop", "reach", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs pygame" in err[0]
    assert not (tmp_path / "d").exists()


def test_pygame_keyboard_headless(tmp_path, monkeypatch, capsys):
    pygame = pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    from mimetic.teleop import PygameInput

    src = PygameInput("keyboard", fps=0)
    try:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_t))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_y))
        s = src.poll()
        assert s.toggle_takeover and s.mark_success and not s.quit and s.axes.tolist() == [0, 0, 0, -1]
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
        assert src.poll().quit
    finally:
        src.close()
    # the command end to end on real pygame (no keys pressed: the episode runs to its time limit)
    code = main(["-q", "teleop", "reach", "--out", str(tmp_path / "d"), "--episodes", "1", "--fps", "0",
                 "--env-option", "max_steps=5"])
    assert code == 0, capsys.readouterr().err
    ds = Dataset.load(tmp_path / "d")
    assert ds.num_episodes == 1 and ds.num_frames == 5 and np.all(ds.actions == 0) and ds.image_keys == []
    # cameras asked for: shown and recorded, stored as the Dataset's default (video) unless told otherwise
    for storage, flags in (("video", []), ("png", ["--image-storage", "png"])):
        code = main(["-q", "teleop", "reach", "--out", str(tmp_path / storage), "--episodes", "1", "--fps", "0",
                     "--env-option", "max_steps=3", "--env-option", "cameras=top", *flags])
        assert code == 0, capsys.readouterr().err
        ds = Dataset.load(tmp_path / storage)
        assert ds.image_keys == ["observation.images.top"] and ds.image_storage == storage and ds.num_frames == 3


def _capturing_source(pygame):
    """A PygameInput that grabs the window (H, W, 3) each time it is polled: what the human saw before that step."""
    from mimetic.teleop import PygameInput

    class Capturing(PygameInput):
        seen: list = []

        def poll(self):
            self.seen.append((pygame.surfarray.array3d(self.screen).swapaxes(0, 1).copy(), self.scale))
            return super().poll()

    return Capturing("keyboard", fps=0)


def _shown_camera(seen, size=64):
    """The camera part of each grabbed window, downscaled back to the camera's pixels."""
    out = []
    for window, k in seen:
        assert k == 512 // size and window.shape[:2] == (size * k + 28, size * k)  # scaled up to 512, status below
        assert window[size * k:].any()  # the status line is drawn
        out.append(window[: size * k : k, : size * k : k])
    return np.stack(out)


@pytest.mark.parametrize("asked", [False, True])
def test_teleop_shows_the_camera_and_records_it_only_if_asked(asked, tmp_path, monkeypatch):
    pygame = pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    from mimetic.envs import make_env

    options = {"max_steps": 6, **({"cameras": "top"} if asked else {})}
    src = _capturing_source(pygame)
    held = {pygame.K_RIGHT, pygame.K_UP}  # the human holds right and up: the agent moves across the view
    monkeypatch.setattr(pygame.key, "get_pressed", lambda: type("Keys", (), {"__getitem__": lambda _, k: k in held})())
    try:
        ds = record("reach", tmp_path / "d", 1, src, env_options=options, seed=3, image_storage="png")
    finally:
        src.close()
    shown = _shown_camera(src.seen)
    assert len(shown) == 6 and ds.num_frames == 6 and np.allclose(ds.actions, [1.0, 1.0])
    assert not np.array_equal(shown[0], shown[-1])
    assert ds.env_options == options  # the dataset's features are the ones asked for
    assert ds.image_keys == (["observation.images.top"] if asked else [])
    env = make_env("reach", cameras="top", max_steps=6)  # the same episode replayed: the frames the env gives
    obs, _ = env.reset(seed=3)
    for t in range(6):
        assert np.array_equal(shown[t], obs["observation.images.top"]), t
        obs = env.step(ds.actions[t])[0]
    if asked:
        assert np.array_equal(ds.episode(0).obs["observation.images.top"], shown)
    else:
        assert sorted(ds.episode(0).obs) == ["observation.state"]
