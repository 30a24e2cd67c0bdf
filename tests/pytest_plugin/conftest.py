"""The plugin's tests drive an example project with pytester; its own tests are not ours."""

collect_ignore = ["example"]
