"""Tests of the VideoCUPS method plugin."""
