// The command table: flags and help here, handlers in commands/*.ts loaded on use.
import { Command, Option } from 'commander';
import type { CliContext } from './context.js';

const EXAMPLES = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

const onlyOption = () =>
  new Option('--only <kinds...>', 'only these kinds of paths').choices([
    'templates',
    'volatile',
    'persistent',
    'other',
  ]);
const configOption = () =>
  new Option('-c, --config <json>', 'configuration: inline JSON, @FILE, or - for standard input');

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('cloudlets')
    .description('Universal server images: one versioned root filesystem, out to every place a server runs')
    .version(process.env.npm_package_version ?? '0.1.0')
    .option('--manifest <file>', 'an off-band manifest instead of /.cloudlet/manifest inside the image')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });

  // Handlers are imported when their command runs so that `--help` stays instant.
  const run =
    <A extends unknown[]>(load: () => Promise<{ run: (ctx: CliContext, ...args: A) => Promise<void> }>) =>
    async (...args: A) => {
      const mod = await load();
      await mod.run(ctx, ...args);
    };

  program
    .command('specs')
    .description("print the manifest's JSON Schema (draft 2020-12)")
    .addHelpText('after', EXAMPLES(['cloudlets specs > manifest.schema.json']))
    .action(run(() => import('./commands/specs.js')));

  program
    .command('manifest')
    .description('print the manifest of IMAGE with defaults filled in')
    .argument('<image>', 'image directory or tar archive (.tar, .tar.gz, .tar.zst)')
    .option('--json', 'machine-readable output (the manifest is JSON either way)')
    .addHelpText('after', EXAMPLES(['cloudlets manifest examples/sample.cloudlet']))
    .action(run(() => import('./commands/manifest.js')));

  program
    .command('validate')
    .description('validate a whole configuration against IMAGE and print it with defaults filled in')
    .argument('<image>', 'image directory or tar archive')
    .addOption(configOption())
    .option('--strict', 'unknown manifest fields are errors, not warnings')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES([
        `cloudlets validate examples/sample.cloudlet --config '{"args":{"hostname":"web1"}}'`,
        'cloudlets validate examples/sample.cloudlet --config @config.json --strict',
      ]),
    )
    .action(run(() => import('./commands/validate.js')));

  program
    .command('validate-args')
    .alias('validate_args')
    .description("validate only the user arguments against IMAGE's args schema")
    .argument('<image>', 'image directory or tar archive')
    .argument('<args>', 'the arguments: inline JSON, @FILE, or -')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES([`cloudlets validate-args examples/sample.cloudlet '{"hostname":"web1"}'`]),
    )
    .action(run(() => import('./commands/validate-args.js')));

  program
    .command('schema')
    .description("print IMAGE's configuration schema")
    .argument('<image>', 'image directory or tar archive')
    .option('--json', 'machine-readable output (the schema is JSON either way)')
    .addHelpText('after', EXAMPLES(['cloudlets schema examples/sample.cloudlet']))
    .action(run(() => import('./commands/schema.js')));

  program
    .command('find')
    .description('list the image-rooted paths of IMAGE')
    .argument('<image>', 'image directory or tar archive')
    .addOption(onlyOption())
    .option('-0, --null', 'end each path with NUL instead of newline (names may hold newlines)')
    .option('--json', 'machine-readable output: [{path, kind, type}]')
    .addHelpText(
      'after',
      EXAMPLES([
        'cloudlets find examples/sample.cloudlet',
        'cloudlets find examples/sample.cloudlet --only volatile',
        'cloudlets find img.tar.zst -0 | xargs -0 -n1 echo',
      ]),
    )
    .action(run(() => import('./commands/find.js')));

  program
    .command('tar')
    .description('write IMAGE as a POSIX pax archive, templates rendered, volatile paths left out')
    .argument('<image>', 'image directory or tar archive')
    .addOption(configOption())
    .addOption(onlyOption())
    .option('-o, --output <file>', 'output file, or - for standard output', '-')
    .option('-f, --force', 'overwrite an existing output file')
    .option(
      '--mtime <time>',
      'clamp every time to this (epoch seconds or ISO 8601); default $SOURCE_DATE_EPOCH',
    )
    .option('--template-timeout <seconds>', 'time limit for rendering each template', '10')
    .addHelpText(
      'after',
      EXAMPLES([
        `cloudlets tar examples/sample.cloudlet --config '{"args":{"hostname":"web1"}}' | tar -tv`,
        'cloudlets tar examples/sample.cloudlet -o sample.tar --mtime 2020-01-01T00:00:00Z',
        'SOURCE_DATE_EPOCH=0 cloudlets tar img.tar.gz -o - | gzip -n > img-configured.tar.gz',
      ]),
    )
    .action(run(() => import('./commands/tar.js')));

  program
    .command('build')
    .description(
      'build a bootable disk from IMAGE: GPT, EFI system partition, ext4 root, GRUB for BIOS and UEFI',
    )
    .argument('<image>', 'image directory or tar archive')
    .addOption(
      new Option('--format <format>', 'disk container')
        .choices(['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi', 'ova', 'gce'])
        .default('raw'),
    )
    .addOption(
      new Option(
        '--target <name>',
        "the VM's home: chooses format, size rounding and boot mode, and checks the target's rules",
      ).choices(['kvm', 'vmware', 'virtualbox', 'hyperv', 'azure', 'xen', 'ec2', 'gce']),
    )
    .addOption(
      new Option(
        '--xen-mode <mode>',
        'with --target xen: hvm (default), or pvh/pv booting the kernel from dom0',
      ).choices(['hvm', 'pvh', 'pv']),
    )
    .option(
      '--subformat <name>',
      'vmdk: streamOptimized (default; ESXi, OVA) or monolithicSparse; vhd: fixed (default; Azure) or dynamic',
    )
    .option('-o, --output <file>', 'the disk file to write')
    .addOption(configOption())
    .option(
      '--size <size>',
      'disk size: auto (least root size + 20% + 64 MiB, + boot partitions) or e.g. 2G, 512M',
      'auto',
    )
    .addOption(
      new Option('--boot <mode>', 'hybrid: GPT booting under BIOS and UEFI; bios: MBR; uefi: GPT + ESP only')
        .choices(['hybrid', 'bios', 'uefi'])
        .default('hybrid'),
    )
    .option(
      '--kernel <path>',
      "image path of the kernel (default: the manifest's kernel entry point, else /boot/vmlinuz-*)",
    )
    .option('--initrd <path>', 'image path of the initial ramdisk')
    .option('--cmdline <args>', 'kernel arguments after root=UUID=... ro console=tty0 console=ttyS0,115200')
    .option('-f, --force', 'overwrite an existing output file')
    .option('--reproducible', 'derive every UUID and time from the image (implied by $SOURCE_DATE_EPOCH)')
    .option('--template-timeout <seconds>', 'time limit for rendering each template', '10')
    .option('--json', 'machine-readable summary on standard output')
    .addHelpText(
      'after',
      EXAMPLES([
        'cloudlets build ./myimage --format raw -o disk.img',
        'cloudlets build ./myimage --target vmware -o web.ova',
        'cloudlets build ./myimage --target gce -o image.tar.gz',
        'cloudlets build ./myimage --target xen --xen-mode pvh -o web.img   # + web.xl.cfg, web.vmlinuz, web.initrd',
        'cloudlets build ./myimage --format qcow2 -o disk.qcow2',
        'cloudlets build ./myimage --format vmdk --subformat monolithicSparse -o disk.vmdk',
        `cloudlets build img.tar.zst -o disk.img --config '{"args":{"hostname":"web1"}}' --size 2G`,
        'cloudlets build ./myimage -o bios.img --boot bios --kernel /boot/vmlinuz-6.1.0-13-amd64 --cmdline quiet',
        'SOURCE_DATE_EPOCH=1700000000 cloudlets build ./myimage -o disk.img --force',
        'qemu-system-x86_64 -m 512 -nographic -drive file=disk.img,format=raw,if=virtio',
        'qemu-system-x86_64 -m 512 -nographic -drive file=disk.qcow2,format=qcow2,if=virtio',
      ]),
    )
    .action(run(() => import('./commands/build.js')));

  program
    .command('config')
    .description('print the applied configuration, or render the templates of an image directory in place')
    .argument('<image>', 'image directory')
    .addOption(configOption())
    .option('-f, --force', 'configure again an image that is already configured')
    .option('--template-timeout <seconds>', 'time limit for rendering each template', '10')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES([
        'cloudlets config examples/sample.cloudlet',
        `cloudlets config ./myimage --config '{"args":{"hostname":"web1"}}'`,
        `cloudlets config ./myimage --config @prod.json --force`,
      ]),
    )
    .action(run(() => import('./commands/config.js')));

  program
    .command('init')
    .description('write a starter manifest for an existing root filesystem, saying what was detected and why')
    .argument('<dir>', 'root filesystem directory')
    .option('-f, --force', 'replace an existing manifest')
    .option('--dry-run', 'print the proposed manifest without writing it')
    .option('--json', 'machine-readable output')
    .addHelpText('after', EXAMPLES(['cloudlets init ./rootfs', 'cloudlets init ./rootfs --dry-run --json']))
    .action(run(() => import('./commands/init.js')));

  // Versioning: content in git or Mercurial, every other bit of metadata in /.cloudlet/metadata.
  const vcsOption = () => new Option('--vcs <kind>', 'repository kind').choices(['git', 'hg']);
  const trustOption = () =>
    new Option('--trust', 'create device nodes, setuid/setgid bits and security.capability (root only)');

  program
    .command('commit')
    .description('record IMAGE as a new revision: content, owners, modes, links, devices, xattrs')
    .argument('<image>', 'image directory (the repository is created in it on first use)')
    .requiredOption('-m, --message <msg>', 'commit message')
    .addOption(vcsOption())
    .option('--mtimes', 'record modification times too (kept from then on)')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES([
        'cloudlets commit ./myimage -m "base system"',
        'cloudlets commit ./myimage -m "base system" --vcs hg',
      ]),
    )
    .action(run(() => import('./commands/commit.js')));

  program
    .command('status')
    .description('what a commit of IMAGE would record; volatile paths shown as ignored')
    .argument('<image>', 'image directory')
    .option('--json', 'machine-readable output')
    .addHelpText('after', EXAMPLES(['cloudlets status ./myimage', 'cloudlets status ./myimage --json']))
    .action(run(() => import('./commands/status.js')));

  program
    .command('log')
    .description('the revisions of IMAGE, newest first')
    .argument('<image>', 'image directory')
    .option('-n, --max <count>', 'show at most this many')
    .option('--json', 'machine-readable output')
    .addHelpText('after', EXAMPLES(['cloudlets log ./myimage', 'cloudlets log ./myimage -n 5 --json']))
    .action(run(() => import('./commands/log.js')));

  program
    .command('diff')
    .description('content and metadata changes: HEAD to the directory, REV to the directory, or REV to REV')
    .argument('<image>', 'image directory')
    .argument('[rev]', 'from this revision (default HEAD)')
    .argument('[rev2]', 'to this revision (default the directory as it is)')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES([
        'cloudlets diff ./myimage',
        'cloudlets diff ./myimage HEAD~1 HEAD',
        'cloudlets diff ./myimage v1 --json',
      ]),
    )
    .action(run(() => import('./commands/diff.js')));

  program
    .command('checkout')
    .description('switch IMAGE to revision REV and restore its metadata (volatile files are kept)')
    .argument('<image>', 'image directory')
    .argument('<rev>', 'revision: hash, branch or tag')
    .addOption(trustOption())
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES(['cloudlets checkout ./myimage HEAD~1', 'cloudlets checkout ./myimage v2 --trust']),
    )
    .action(run(() => import('./commands/checkout.js')));

  program
    .command('clone')
    .description('a new image directory DIR from the repository at URL, metadata restored')
    .argument('<url>', 'repository: path, file://, https://, ssh://, git://')
    .argument('<dir>', 'new image directory (absent or empty)')
    .addOption(vcsOption())
    .addOption(trustOption())
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES([
        'cloudlets clone https://example.org/images/base.git ./base',
        'sudo cloudlets clone ./myimage /srv/copy --trust',
        'cloudlets clone http://127.0.0.1:8000/ ./copy --vcs hg',
      ]),
    )
    .action(run(() => import('./commands/clone.js')));

  program
    .command('push')
    .description("send IMAGE's revisions to DEST (default the repository it was cloned from)")
    .argument('<image>', 'image directory')
    .argument('[dest]', 'repository path or URL')
    .addHelpText(
      'after',
      EXAMPLES(['cloudlets push ./myimage', 'cloudlets push ./myimage /srv/images/base.git']),
    )
    .action(run(() => import('./commands/push.js')));

  program
    .command('pull')
    .description('fetch revisions into IMAGE, merge them, and restore the merged metadata')
    .argument('<image>', 'image directory')
    .argument('[src]', 'repository path or URL (default the one it was cloned from)')
    .addOption(trustOption())
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES(['cloudlets pull ./myimage', 'cloudlets pull ./myimage /srv/images/base.git']),
    )
    .action(run(() => import('./commands/pull.js')));

  for (const vcs of ['git', 'hg'] as const) {
    program
      .command(vcs)
      .description(`run ${vcs} itself with the image directory as the repository`)
      .argument('<image>', 'image directory')
      .argument('[args...]', `arguments for ${vcs}; put them after -- when they start with -`)
      .allowUnknownOption()
      .addHelpText(
        'after',
        EXAMPLES([
          `cloudlets ${vcs} ./myimage log`,
          `cloudlets ${vcs} ./myimage -- ${vcs === 'git' ? 'log --oneline -n 3' : 'log -l 3'}`,
        ]),
      )
      .action(run(() => import(`./commands/${vcs}.js`)));
  }

  return program;
}
