"""Where to deploy: the local engine, an ad-hoc ``[user@]host[:port]``, or an inventory file.

Inventory (YAML, Ansible-like)::

    vars:                         # for every host
      user: deploy
      values: {swarm: {endpoint_mode: dnsrr}}
    hosts:
      manager1:                   # name; also the ssh config alias looked up
        hostname: 10.0.0.5        # optional (default: the name, through ssh config)
        port: 22
        identity_file: ~/.ssh/deploy_ed25519
        values_files: [values.prod.yaml]     # relative to the inventory file
      laptop:
        connection: local
    groups:
      prod:
        hosts: [manager1]
        vars: {accept_new_host_key: false}
      everything:
        children: [prod]          # groups of groups (no cycles)
        hosts: [laptop]

Settings merge: top ``vars`` < group ``vars`` (in file order) < the host's own. ``values``
mappings merge deeply. Every SSH host is resolved through an ssh config file (``~/.ssh/config``,
or ``--ssh-config`` / ``$MLOPS_SSH_CONFIG``): HostName, Port, User, IdentityFile,
UserKnownHostsFile, as ``ssh`` would; explicit settings win over the config file.

Every problem is a ``ConfigError`` naming ``file:line: key.path``, found before any host is
contacted: reading an inventory is pure (files and the ssh config only).

The package: ``hosts`` (``Host`` and the settings' shapes), ``ssh`` (ssh config and ad-hoc
targets), ``document`` (the file with its lines, settings checked, layers merged), ``loading``
(the inventory and the host selection, re-exported here).
"""

from deployer.inventory.hosts import DEFAULT_SSH_CONFIG, SSH_CONFIG_ENV, Host
from deployer.inventory.loading import Inventory, load_inventory, select_hosts
from deployer.inventory.ssh import adhoc_host, parse_adhoc, resolve_ssh, ssh_config_path

__all__ = [
    "DEFAULT_SSH_CONFIG", "SSH_CONFIG_ENV", "Host", "Inventory", "adhoc_host", "load_inventory",
    "parse_adhoc", "resolve_ssh", "select_hosts", "ssh_config_path",
]
