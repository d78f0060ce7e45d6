; Inno Setup 6 script: the ModelDeck installer for Windows (per-user or for all users).
;
;   iscc /DAppVersion=X.Y.Z /DSourceDir=..\..\build\dist\modeldeck packaging\windows\modeldeck.iss
;
; packaging/windows/build.ps1 runs it with the version from app/__init__.py (the one source of
; the version); it refuses to build without one. Installs a Start-menu entry, an uninstaller
; (Settings > Apps), and "Open with ModelDeck" for .gguf and .safetensors files.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z (build.ps1 reads it from app/__init__.py)
#endif
#ifndef SourceDir
  #define SourceDir "..\..\build\dist\modeldeck"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\build\out"
#endif
#define AppName "ModelDeck"
#define AppExe "modeldeck.exe"

[Setup]
; The AppId ties upgrades and the uninstaller to this app: never change it.
AppId={{6E3C1B8A-4B7E-4F0C-9A57-2D4F8E1C7B10}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=ModelDeck
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename=ModelDeck-{#AppVersion}-setup
SetupIconFile=..\..\build\icons\modeldeck.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName} {#AppVersion}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesAssociations=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "associate"; Description: "Open .gguf and .safetensors files with {#AppName}"; GroupDescription: "File types:"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; File associations: a ProgID per type, offered in "Open with" (OpenWithProgids) so an existing
; default is not taken over. HKA is HKCU for a per-user install, HKLM for all users.
Root: HKA; Subkey: "Software\Classes\.gguf\OpenWithProgids"; ValueType: string; ValueName: "ModelDeck.gguf"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\ModelDeck.gguf"; ValueType: string; ValueName: ""; ValueData: "GGUF model"; Flags: uninsdeletekey; Tasks: associate
Root: HKA; Subkey: "Software\Classes\ModelDeck.gguf\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#AppExe},0"; Tasks: associate
Root: HKA; Subkey: "Software\Classes\ModelDeck.gguf\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.safetensors\OpenWithProgids"; ValueType: string; ValueName: "ModelDeck.safetensors"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\ModelDeck.safetensors"; ValueType: string; ValueName: ""; ValueData: "safetensors model weights"; Flags: uninsdeletekey; Tasks: associate
Root: HKA; Subkey: "Software\Classes\ModelDeck.safetensors\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#AppExe},0"; Tasks: associate
Root: HKA; Subkey: "Software\Classes\ModelDeck.safetensors\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""; Tasks: associate
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".gguf"; ValueData: ""; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".safetensors"; ValueData: ""

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; The app's own data (settings, conversations) stays in %LOCALAPPDATA%\ModelDeck, and models
; stay in the Hugging Face cache: uninstalling never deletes a user's downloads.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
